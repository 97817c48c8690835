/**
 * The CPU reference executor: llama2.c's forward() in TypeScript with float64 activations and
 * accumulation. It is the oracle every GPU executor is compared against.
 */
import { dequantizeRow, isPacked, matrixRow } from '../loader/quant.ts';
import type { LoadedModel, Matrix, ModelConfig, ModelWeights } from '../loader/types.ts';

/** Inverse-RMS normalisation: out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]. */
export function rmsnorm(out: Float64Array, x: Float64Array, w: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = x[i] * inv * w[i];
}

/**
 * out[r] = W[r, :] · x  for W (rows, cols) row-major; packed matrices are decoded a row at a
 * time (exactly, see loader/quant.ts) and accumulated in float64.
 */
export function matvec(out: Float64Array, w: Matrix, x: Float64Array, rows: number, cols: number, outOffset = 0): void {
  if (isPacked(w)) {
    const row = new Float32Array(cols);
    for (let r = 0; r < rows; r++) {
      dequantizeRow(w, r, row);
      let acc = 0;
      for (let c = 0; c < cols; c++) acc += row[c] * x[c];
      out[outOffset + r] = acc;
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) acc += w[base + c] * x[c];
    out[outOffset + r] = acc;
  }
}

/**
 * RoPE angle table shared by the CPU and GPU executors: for position p and pair i of a head,
 * angle = p * theta^(-2i/headDim), evaluated in float64. Returns [cos, sin] interleaved,
 * shape (seqLen, headDim/2, 2).
 */
export function ropeTable(cfg: ModelConfig): Float64Array {
  const half = cfg.headDim / 2;
  const t = new Float64Array(cfg.seqLen * half * 2);
  for (let p = 0; p < cfg.seqLen; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(cfg.ropeTheta, (-2 * i) / cfg.headDim);
      t[(p * half + i) * 2] = Math.cos(angle);
      t[(p * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return t;
}

export class ReferenceExecutor {
  readonly config: ModelConfig;
  private readonly w: ModelWeights;
  private readonly rope: Float64Array;
  // KV cache, (layer, seqLen, kvDim) each.
  private readonly keyCache: Float64Array;
  private readonly valueCache: Float64Array;
  // Activations.
  private readonly x: Float64Array; // (dim) residual stream
  private readonly xb: Float64Array; // (dim) normalised input
  private readonly q: Float64Array; // (nHeads*headDim)
  private readonly kv: Float64Array; // (2*kvDim): k then v of this position
  private readonly att: Float64Array; // (nHeads*headDim) attention output
  private readonly scores: Float64Array; // (seqLen)
  private readonly hb: Float64Array; // (hiddenDim) gate
  private readonly hb2: Float64Array; // (hiddenDim) up
  private readonly logits: Float64Array; // (vocab)

  constructor(model: LoadedModel) {
    const c = (this.config = model.config);
    this.w = model.weights;
    this.rope = ropeTable(c);
    const kvDim = c.nKvHeads * c.headDim;
    const qDim = c.nHeads * c.headDim;
    this.keyCache = new Float64Array(c.nLayers * c.seqLen * kvDim);
    this.valueCache = new Float64Array(c.nLayers * c.seqLen * kvDim);
    this.x = new Float64Array(c.dim);
    this.xb = new Float64Array(Math.max(c.dim, qDim));
    this.q = new Float64Array(qDim);
    this.kv = new Float64Array(2 * kvDim);
    this.att = new Float64Array(qDim);
    this.scores = new Float64Array(c.seqLen);
    this.hb = new Float64Array(c.hiddenDim);
    this.hb2 = new Float64Array(c.hiddenDim);
    this.logits = new Float64Array(c.vocabSize);
  }

  /** Rotate adjacent pairs (2i, 2i+1) of each head of `v` (heads of headDim) at position `pos`. */
  private rotate(v: Float64Array, offset: number, heads: number, pos: number): void {
    const { headDim } = this.config;
    const half = headDim / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const cos = this.rope[(pos * half + i) * 2];
        const sin = this.rope[(pos * half + i) * 2 + 1];
        const j = offset + h * headDim + 2 * i;
        const a = v[j];
        const b = v[j + 1];
        v[j] = a * cos - b * sin;
        v[j + 1] = a * sin + b * cos;
      }
    }
  }

  /** One decode step: feed `token` at `pos`, return the logits (vocab). */
  forward(token: number, pos: number): Float32Array {
    const c = this.config;
    const w = this.w;
    const { dim, headDim, nHeads, nKvHeads, hiddenDim } = c;
    const kvDim = nKvHeads * headDim;
    const qDim = nHeads * headDim;
    const group = nHeads / nKvHeads;
    const x = this.x;
    const emb = matrixRow(w.tokEmb, token, dim);
    for (let i = 0; i < dim; i++) x[i] = emb[i];

    for (let l = 0; l < c.nLayers; l++) {
      const lw = w.layers[l];
      // Attention block.
      rmsnorm(this.xb, x, lw.attnNorm, c.normEps);
      const xb = this.xb.subarray(0, dim);
      matvec(this.q, lw.wq, xb, qDim, dim);
      matvec(this.kv, lw.wk, xb, kvDim, dim, 0);
      matvec(this.kv, lw.wv, xb, kvDim, dim, kvDim);
      if (lw.bq && lw.bk && lw.bv) {
        for (let i = 0; i < qDim; i++) this.q[i] += lw.bq[i];
        for (let i = 0; i < kvDim; i++) {
          this.kv[i] += lw.bk[i];
          this.kv[kvDim + i] += lw.bv[i];
        }
      }
      this.rotate(this.q, 0, nHeads, pos);
      this.rotate(this.kv, 0, nKvHeads, pos);
      const cacheBase = (l * c.seqLen + pos) * kvDim;
      for (let i = 0; i < kvDim; i++) {
        this.keyCache[cacheBase + i] = this.kv[i];
        this.valueCache[cacheBase + i] = this.kv[kvDim + i];
      }
      const scale = 1 / Math.sqrt(headDim);
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / group);
        let max = -Infinity;
        for (let p = 0; p <= pos; p++) {
          const kb = (l * c.seqLen + p) * kvDim + kvh * headDim;
          let s = 0;
          for (let d = 0; d < headDim; d++) s += this.q[h * headDim + d] * this.keyCache[kb + d];
          s *= scale;
          this.scores[p] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let p = 0; p <= pos; p++) {
          this.scores[p] = Math.exp(this.scores[p] - max);
          sum += this.scores[p];
        }
        for (let d = 0; d < headDim; d++) {
          let acc = 0;
          for (let p = 0; p <= pos; p++) {
            acc += this.scores[p] * this.valueCache[(l * c.seqLen + p) * kvDim + kvh * headDim + d];
          }
          this.att[h * headDim + d] = acc / sum;
        }
      }
      matvec(this.xb, lw.wo, this.att, dim, qDim);
      for (let i = 0; i < dim; i++) x[i] += this.xb[i];

      // Feed-forward block (SwiGLU).
      rmsnorm(this.xb, x, lw.ffnNorm, c.normEps);
      const xf = this.xb.subarray(0, dim);
      matvec(this.hb, lw.w1, xf, hiddenDim, dim);
      matvec(this.hb2, lw.w3, xf, hiddenDim, dim);
      for (let i = 0; i < hiddenDim; i++) {
        const g = this.hb[i];
        this.hb[i] = (g / (1 + Math.exp(-g))) * this.hb2[i];
      }
      matvec(this.xb, lw.w2, this.hb, dim, hiddenDim);
      for (let i = 0; i < dim; i++) x[i] += this.xb[i];
    }

    rmsnorm(this.xb, x, w.finalNorm, c.normEps);
    matvec(this.logits, w.wcls, this.xb.subarray(0, dim), c.vocabSize, dim);
    return Float32Array.from(this.logits);
  }
}
