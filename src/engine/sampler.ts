/**
 * Token sampling, shared semantics for the host (reference executor) and the device (the
 * `sample` stage in src/kernels-wgsl/sample.wgsl.ts implements the same steps in f32):
 *
 * 1. temperature 0: argmax, the first index wins a tie.
 * 2. top-k (k > 0): keep logits >= the k-th largest value (ties at the threshold are all kept).
 * 3. weights w_i = exp((l_i - max) / T) over the kept set.
 * 4. top-p (0 < p < 1): keep the largest threshold t such that the kept weights >= t still hold
 *    at least p of the mass (the nucleus).
 * 5. draw u = uniform(seed, pos) and return the first index (in id order) where the running
 *    sum of nucleus weights exceeds u * sum.
 * Thresholds are found by bisection over the float ordering (32 steps), not by sorting: that is
 * how a workgroup finds them on the device, and doing the same here keeps tie semantics equal.
 */
import { OptionError } from '../errors.ts';

export interface SamplingOptions {
  /** 0 = greedy. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
  seed: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, seed: 0 };

export function validateSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) {
    throw new OptionError('temperature', `must be a finite number >= 0 (got ${o.temperature})`);
  }
  if (!Number.isInteger(o.topK) || o.topK < 0) throw new OptionError('topK', `must be an integer >= 0 (got ${o.topK})`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new OptionError('topP', `must be in (0, 1] (got ${o.topP})`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) {
    throw new OptionError('seed', `must be an integer in [0, 4294967295] (got ${o.seed})`);
  }
}

/** PCG hash (O'Neill), u32 -> u32. Identical in WGSL. */
export function pcgHash(x: number): number {
  const state = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> (((state >>> 28) + 4) >>> 0)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The uniform draw for position `pos`: 24 random bits in [0, 1). Identical in WGSL. */
export function uniformAt(seed: number, pos: number): number {
  const h = pcgHash((seed ^ Math.imul(pos + 1, 0x9e3779b9)) >>> 0);
  return (h >>> 8) / 16777216;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** Monotonic map of a float to u32 (total order of finite floats). Identical in WGSL. */
export function orderKey(v: number): number {
  f32[0] = v;
  const b = u32[0];
  return (b & 0x80000000) !== 0 ? ~b >>> 0 : (b | 0x80000000) >>> 0;
}

/** Largest key t (bisection over u32) such that predicate(t) holds; predicate is monotone decreasing in t. */
function largestKey(pred: (t: number) => boolean): number {
  let lo = 0; // pred(0) assumed true
  let hi = 0xffffffff;
  while (lo < hi) {
    const mid = lo + Math.ceil((hi - lo) / 2);
    if (pred(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Sample the token at position `pos` (the position the token will be fed at is pos + 1). */
export function sample(logits: Float32Array, o: SamplingOptions, pos: number): number {
  if (o.temperature === 0) return argmax(logits);
  return drawFrom(nucleusWeights(logits, o), uniformAt(o.seed, pos));
}

/**
 * The weights of steps 2-4 (temperature, top-k, top-p): w[i] > 0 exactly for the tokens in the
 * nucleus; normalised, they are the distribution `sample` draws from (temperature > 0).
 */
export function nucleusWeights(logits: Float32Array, o: SamplingOptions): Float64Array {
  const n = logits.length;
  const keys = new Uint32Array(n);
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    keys[i] = orderKey(logits[i]);
    if (logits[i] > max) max = logits[i];
  }
  let kMin = 0;
  if (o.topK > 0 && o.topK < n) {
    kMin = largestKey((t) => {
      let c = 0;
      for (let i = 0; i < n; i++) if (keys[i] >= t) c++;
      return c >= o.topK;
    });
  }
  const w = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    if (keys[i] >= kMin) {
      w[i] = Math.exp((logits[i] - max) / o.temperature);
      total += w[i];
    }
  }
  let pMin = kMin;
  if (o.topP < 1) {
    const need = o.topP * total;
    pMin = largestKey((t) => {
      if (t < kMin) return true;
      let s = 0;
      for (let i = 0; i < n; i++) if (keys[i] >= t) s += w[i];
      return s >= need;
    });
  }
  for (let i = 0; i < n; i++) if (keys[i] < pMin) w[i] = 0;
  return w;
}

/** Step 5: the first index (in id order) where the running sum of `w` exceeds u * sum (u in [0, 1)). */
export function drawFrom(w: Float64Array, u: number): number {
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += w[i];
  const r = u * sum;
  let acc = 0;
  let last = 0;
  for (let i = 0; i < w.length; i++) {
    if (!(w[i] > 0)) continue;
    acc += w[i];
    last = i;
    if (acc > r) return i;
  }
  return last;
}
