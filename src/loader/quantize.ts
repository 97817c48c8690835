/**
 * Quantizers: float32 rows into ggml's block formats (the inverse of quant.ts).
 *
 * - q8_0, q4_0, q5_0 follow llama.cpp's reference rounding (quantize_row_*_ref) step for step in
 *   float32 arithmetic, so they give the same bytes as llama.cpp without an importance matrix.
 * - q4_k and q6_k use a simpler scale search than llama.cpp's (a small grid of scales, each
 *   refitted by least squares, keeping the one of least squared error); the blocks are valid
 *   ggml blocks, not byte-identical to llama.cpp's. quantError reports what they lose.
 * - f16 rounds to nearest even.
 */
import type { PackedMatrix, WeightType } from './types.ts';
import { FORMATS, dequantize, f32ToF16, rowBytes } from './quant.ts';
import { F16_TABLE } from './util.ts';

const fr = Math.fround;
/** C's roundf: halves away from zero. */
const roundAway = (v: number): number => (v < 0 ? -Math.round(-v) : Math.round(v));
const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);
const setF16 = (b: Uint8Array, o: number, v: number): number => {
  const h = f32ToF16(v);
  b[o] = h & 0xff;
  b[o + 1] = h >> 8;
  return F16_TABLE[h]!;
};

/** The types kloop quantizes to. */
export type QuantizeType = 'f16' | 'q8_0' | 'q4_0' | 'q5_0' | 'q4_k' | 'q6_k';
export const QUANTIZE_TYPES: readonly QuantizeType[] = ['f16', 'q8_0', 'q4_0', 'q5_0', 'q4_k', 'q6_k'];

/** quantize_row_q8_0_ref: d = amax / 127, q = roundf(x / d). */
function blockQ8_0(x: Float32Array, i: number, b: Uint8Array, o: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[i + j]!));
  const d = fr(amax / 127);
  const id = d ? fr(1 / d) : 0;
  setF16(b, o, d);
  for (let j = 0; j < 32; j++) b[o + 2 + j] = roundAway(fr(x[i + j]! * id)) & 0xff;
}

/**
 * quantize_row_q4_0_ref / q5_0_ref: d = (the value of largest magnitude, the first one on a tie)
 * / -half, q = min(max, trunc(x / d + half + 0.5)).
 */
function blockQx_0(x: Float32Array, i: number, b: Uint8Array, o: number, bits: 4 | 5): void {
  const half = bits === 4 ? 8 : 16;
  const top = 2 * half - 1;
  let amax = 0;
  let max = 0;
  for (let j = 0; j < 32; j++) {
    const v = x[i + j]!;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = fr(max / -half);
  const id = d ? fr(1 / d) : 0;
  setF16(b, o, d);
  const qs = o + (bits === 4 ? 2 : 6);
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const q0 = Math.min(top, Math.trunc(fr(fr(x[i + j]! * id) + half + 0.5)));
    const q1 = Math.min(top, Math.trunc(fr(fr(x[i + 16 + j]! * id) + half + 0.5)));
    b[qs + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
    qh |= ((q0 >> 4) & 1) << j;
    qh |= ((q1 >> 4) & 1) << (j + 16);
  }
  if (bits === 5) {
    b[o + 2] = qh & 0xff;
    b[o + 3] = (qh >>> 8) & 0xff;
    b[o + 4] = (qh >>> 16) & 0xff;
    b[o + 5] = (qh >>> 24) & 0xff;
  }
}

/**
 * Fit x ≈ scale * L - m (L in 0..nmax, m >= 0) for one sub-block: a grid of scales spanning
 * [min(x, 0), max(x)], each refitted by least squares (scale and offset) for its levels; the
 * fit of least squared error wins. Returns [scale, m].
 */
function fitAffine(x: Float32Array, i: number, n: number, nmax: number): [number, number] {
  let lo = 0;
  let hi = -Infinity;
  for (let j = 0; j < n; j++) {
    lo = Math.min(lo, x[i + j]!);
    hi = Math.max(hi, x[i + j]!);
  }
  if (!(hi > lo)) return [0, -lo];
  let best: [number, number] = [(hi - lo) / nmax, -lo];
  let bestErr = Infinity;
  for (let k = -10; k <= 10; k++) {
    const s0 = (hi - lo) / (nmax + 0.1 * k);
    // Levels for this scale, then the least-squares scale and offset for those levels.
    let sl = 0, sl2 = 0, sx = 0, sxl = 0;
    const L = new Array<number>(n);
    for (let j = 0; j < n; j++) {
      const l = clamp(Math.round((x[i + j]! - lo) / s0), 0, nmax);
      L[j] = l;
      sl += l;
      sl2 += l * l;
      sx += x[i + j]!;
      sxl += x[i + j]! * l;
    }
    const D = n * sl2 - sl * sl;
    let s = s0;
    let off = lo;
    if (D > 0) {
      s = (n * sxl - sx * sl) / D;
      off = (sl2 * sx - sl * sxl) / D;
      if (off > 0) {
        off = 0;
        s = sl2 > 0 ? sxl / sl2 : s0;
      }
    }
    if (!(s > 0)) continue;
    let err = 0;
    for (let j = 0; j < n; j++) {
      const e = s * L[j]! + off - x[i + j]!;
      err += e * e;
    }
    if (err < bestErr) {
      bestErr = err;
      best = [s, -off];
    }
  }
  return best;
}

/** Q4_K: eight sub-blocks of 32, six-bit scales and mins relative to the block's d and dmin. */
function blockQ4_K(x: Float32Array, i: number, b: Uint8Array, o: number): void {
  const scales = new Float64Array(8);
  const mins = new Float64Array(8);
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    [scales[j], mins[j]] = fitAffine(x, i + 32 * j, 32, 15);
    maxScale = Math.max(maxScale, scales[j]!);
    maxMin = Math.max(maxMin, mins[j]!);
  }
  const invScale = maxScale > 0 ? 63 / maxScale : 0;
  const invMin = maxMin > 0 ? 63 / maxMin : 0;
  const sc = b.subarray(o + 4, o + 16);
  sc.fill(0);
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, Math.round(invScale * scales[j]!));
    const lm = Math.min(63, Math.round(invMin * mins[j]!));
    if (j < 4) {
      sc[j] = ls;
      sc[j + 4] = lm;
    } else {
      sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      sc[j - 4]! |= (ls >> 4) << 6;
      sc[j]! |= (lm >> 4) << 6;
    }
  }
  const d = setF16(b, o, maxScale / 63);
  const dmin = setF16(b, o + 2, maxMin / 63);
  // Levels for the scales as stored.
  const L = new Uint8Array(256);
  for (let j = 0; j < 8; j++) {
    const [s, m] = j < 4 ? [sc[j]! & 63, sc[j + 4]! & 63] : [(sc[j + 4]! & 0xf) | ((sc[j - 4]! >> 6) << 4), (sc[j + 4]! >> 4) | ((sc[j]! >> 6) << 4)];
    const dl = fr(d * s);
    if (!dl) continue;
    const ml = fr(dmin * m);
    for (let k = 0; k < 32; k++) L[32 * j + k] = clamp(Math.round((x[i + 32 * j + k]! + ml) / dl), 0, 15);
  }
  for (let g = 0; g < 4; g++) {
    for (let l = 0; l < 32; l++) b[o + 16 + 32 * g + l] = L[64 * g + l]! | (L[64 * g + 32 + l]! << 4);
  }
}

/** Q6_K: sixteen sub-blocks of 16, signed 8-bit scales relative to the block's d, values -32..31. */
function blockQ6_K(x: Float32Array, i: number, b: Uint8Array, o: number): void {
  const scales = new Float64Array(16);
  let maxAbs = 0;
  let maxScale = 0;
  for (let s = 0; s < 16; s++) {
    const at = i + 16 * s;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 16; j++) {
      if (Math.abs(x[at + j]!) > amax) {
        amax = Math.abs(x[at + j]!);
        max = x[at + j]!;
      }
    }
    let best = 0;
    if (amax > 0) {
      // The value of largest magnitude maps to -32 (or near it); refit the scale for the levels.
      let bestErr = Infinity;
      for (let k = -9; k <= 9; k++) {
        const inv = -(32 + 0.1 * k) / max;
        let sxl = 0, sll = 0;
        const L = new Array<number>(16);
        for (let j = 0; j < 16; j++) {
          const l = clamp(Math.round(inv * x[at + j]!), -32, 31);
          L[j] = l;
          sxl += x[at + j]! * l;
          sll += l * l;
        }
        if (sll === 0) continue;
        const sc = sxl / sll;
        let err = 0;
        for (let j = 0; j < 16; j++) err += (sc * L[j]! - x[at + j]!) ** 2;
        if (err < bestErr) {
          bestErr = err;
          best = sc;
        }
      }
    }
    scales[s] = best;
    if (Math.abs(best) > maxAbs) {
      maxAbs = Math.abs(best);
      maxScale = best;
    }
  }
  b.fill(0, o, o + 210);
  if (maxAbs === 0) return;
  const iscale = -128 / maxScale;
  const d = setF16(b, o + 208, 1 / iscale);
  const L = new Uint8Array(256);
  for (let s = 0; s < 16; s++) {
    const q = Math.max(-128, Math.min(127, Math.round(iscale * scales[s]!)));
    b[o + 192 + s] = q & 0xff;
    const dl = fr(d * q);
    for (let j = 0; j < 16; j++) L[16 * s + j] = (dl ? clamp(Math.round(x[i + 16 * s + j]! / dl), -32, 31) : 0) + 32;
  }
  for (let h = 0; h < 2; h++) {
    const ql = o + 64 * h;
    const qh = o + 128 + 32 * h;
    const y = 128 * h;
    for (let l = 0; l < 32; l++) {
      b[ql + l] = (L[y + l]! & 0xf) | ((L[y + l + 64]! & 0xf) << 4);
      b[ql + l + 32] = (L[y + l + 32]! & 0xf) | ((L[y + l + 96]! & 0xf) << 4);
      b[qh + l] = (L[y + l]! >> 4) | ((L[y + l + 32]! >> 4) << 2) | ((L[y + l + 64]! >> 4) << 4) | ((L[y + l + 96]! >> 4) << 6);
    }
  }
}

/** Encode one row of `cols` values (cols a multiple of the block) into `out` at byte `o`. */
export function quantizeRow(type: QuantizeType, x: Float32Array, out: Uint8Array, o = 0): void {
  const f = FORMATS[type];
  const n = x.length;
  if (n % f.blockElems !== 0) throw new Error(`${f.name} rows need a multiple of ${f.blockElems} values, not ${n}`);
  for (let i = 0, at = o; i < n; i += f.blockElems, at += f.blockBytes) {
    switch (type) {
      case 'f16':
        setF16(out, at, x[i]!);
        break;
      case 'q8_0':
        blockQ8_0(x, i, out, at);
        break;
      case 'q4_0':
        blockQx_0(x, i, out, at, 4);
        break;
      case 'q5_0':
        blockQx_0(x, i, out, at, 5);
        break;
      case 'q4_k':
        blockQ4_K(x, i, out, at);
        break;
      case 'q6_k':
        blockQ6_K(x, i, out, at);
        break;
    }
  }
}

/** A float32 matrix [rows, cols] in `type`. */
export function quantizeMatrix(type: QuantizeType, x: Float32Array, rows: number, cols: number): PackedMatrix {
  if (x.length !== rows * cols) throw new Error(`quantize: ${x.length} values are not ${rows} x ${cols}`);
  const rb = rowBytes(type, cols);
  const data = new Uint8Array(rows * rb);
  for (let r = 0; r < rows; r++) quantizeRow(type, x.subarray(r * cols, (r + 1) * cols), data, r * rb);
  return { type, rows, cols, data };
}

/** What quantizing lost: the RMS error relative to the RMS of `x`, and the largest absolute error. */
export function quantError(x: Float32Array, q: PackedMatrix | Float32Array): { rel: number; maxAbs: number } {
  const y = dequantize(q);
  let d = 0, n = 0, maxAbs = 0;
  for (let i = 0; i < x.length; i++) {
    const e = y[i]! - x[i]!;
    d += e * e;
    n += x[i]! * x[i]!;
    maxAbs = Math.max(maxAbs, Math.abs(e));
  }
  return { rel: n > 0 ? Math.sqrt(d / n) : Math.sqrt(d), maxAbs };
}

/** Whether `type` can encode rows of `cols` values. */
export function fitsRows(type: WeightType, cols: number): boolean {
  return cols % FORMATS[type].blockElems === 0;
}
