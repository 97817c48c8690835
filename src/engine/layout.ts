/**
 * Where everything lives on the device: the stacked weight buffers (w[n]: per-layer tensors at
 * layer * stride), the KV cache (kv[n]), the activation regions and the control words. The
 * offsets become WGSL constants, so every kernel shape addresses the same layout.
 */
import { KloopError } from '../errors.ts';
import type { LoadedModel, ModelConfig } from '../loader/types.ts';
import { dequantize } from '../loader/quant.ts';
import { ropeTable } from './reference.ts';

/** Most tokens one dispatch may decode (--tokens-per-dispatch). */
export const MAX_TOKENS_PER_DISPATCH = 64;

export interface KernelOptions {
  /** Invocations per workgroup (power of two). */
  wg: number;
  /** Invocations sharing one matvec row (power of two dividing wg). */
  lanes: number;
  /** Input columns staged in workgroup memory per matvec pass (default: the widest input that fits). */
  tile?: number;
  /**
   * 'gpu': tree reductions and parallel attention; 'cpu': barrier-light forms for CPU adapters,
   * where invocations are SIMD lanes of one thread and every barrier is a context switch.
   */
  style?: 'cpu' | 'gpu';
  /**
   * Weights read as vec4<f32> (16-byte loads). Default: on for the 'gpu' style when every matrix
   * width is a multiple of 4; CPU adapters scalarise vector loads, so they stay scalar.
   */
  vec4?: boolean;
}

export interface Layout {
  config: ModelConfig;
  /** Positions the KV cache holds (<= config.seqLen). */
  context: number;
  kernel: KernelOptions;
  tile: number;
  /** Constants of the WGSL header. */
  consts: Record<string, number>;
  /** Float counts of each weight buffer. */
  sizes: { emb: number; attn: number; ffn1: number; ffn3: number; ffn2: number; kv: number; act: number; ctl: number };
  maxSlots: number;
}

const align = (n: number, a = 64): number => Math.ceil(n / a) * a;

export function makeLayout(c: ModelConfig, kernelIn: KernelOptions, context: number, workgroupStorage: number): Layout {
  let kernel = kernelIn;
  const { dim, hiddenDim, nHeads, nKvHeads, headDim, vocabSize, nLayers } = c;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const qkvRows = qDim + 2 * kvDim;
  if (headDim % 2 !== 0) throw new KloopError(`model: head size ${headDim} is odd; RoPE needs pairs`);
  if (nHeads % nKvHeads !== 0) throw new KloopError(`model: ${nHeads} heads not a multiple of ${nKvHeads} KV heads`);
  const { wg, lanes } = kernel;
  if ((wg & (wg - 1)) !== 0 || (lanes & (lanes - 1)) !== 0 || lanes > wg) {
    throw new KloopError(`kernel: workgroup size ${wg} and lanes ${lanes} must be powers of two with lanes <= size`);
  }
  // Workgroup memory: xs (TILE) + red, redi (WG) + scores (context) + qs (HD) + a few words.
  const fixed = (2 * wg + context + headDim + 16) * 4;
  const room = Math.floor((workgroupStorage - fixed) / 4);
  if (room < 64) {
    throw new KloopError(
      `context ${context}: attention scores do not fit this adapter's ${workgroupStorage} bytes of workgroup memory; use a shorter --context`,
    );
  }
  const maxCols = Math.max(dim, qDim, hiddenDim);
  // The input tile of a matvec: the whole input vector when it fits (staged once per stage).
  const fit = Math.floor(Math.min(room, align(maxCols), 8192) / 64) * 64;
  const tile = kernel.tile === undefined ? fit : Math.min(kernel.tile, fit);
  const widths4 = [dim, qDim, hiddenDim].every((n) => n % 4 === 0) && tile % 4 === 0;
  if (kernel.vec4 && !widths4) throw new KloopError(`kernel: vec4 weights need matrix widths and the tile (${tile}) to be multiples of 4`);
  kernel = { ...kernel, vec4: kernel.vec4 ?? (kernel.style === 'gpu' && widths4) };
  if (!Number.isInteger(tile) || tile < 1) throw new KloopError(`kernel: tile ${kernel.tile} must be a positive integer`);

  const ropeFloats = context * headDim; // (context, headDim/2, 2)
  const EMB_OFF = 0;
  const FINAL_NORM_OFF = align(vocabSize * dim);
  const ROPE_OFF = align(FINAL_NORM_OFF + dim);
  const WCLS_OFF = c.tiedEmbeddings ? EMB_OFF : align(ROPE_OFF + ropeFloats);
  const embSize = c.tiedEmbeddings ? ROPE_OFF + ropeFloats : WCLS_OFF + vocabSize * dim;

  const ATTN_NORM_OFF = 0;
  const WQKV_OFF = align(dim);
  const BQKV_OFF = align(WQKV_OFF + qkvRows * dim);
  const WO_OFF = align(BQKV_OFF + (c.attentionBias ? qkvRows : 0));
  const ATTN_STRIDE = align(WO_OFF + dim * qDim);

  // Gate and up in separate buffers: each stays under the binding limit twice as long.
  const FFN_NORM_OFF = 0;
  const W1_OFF = align(dim);
  const FFN_STRIDE = align(W1_OFF + hiddenDim * dim);
  const W3_STRIDE = align(hiddenDim * dim);
  const W2_STRIDE = align(dim * hiddenDim);

  // Activations (u32 words holding f32 bits).
  let a = 0;
  const region = (n: number): number => {
    const at = a;
    a = align(a + n);
    return at;
  };
  const A_X = region(dim);
  const A_H = region(dim);
  const A_XN = region(dim);
  const A_Q = region(qkvRows); // q | k | v contiguous: the qkv matvec writes rows in order
  const A_K = A_Q + qDim;
  const A_V = A_K + kvDim;
  const A_ATT = region(qDim);
  const A_G = region(hiddenDim);
  const A_LOGITS = region(vocabSize);
  const actSize = a;

  const maxSlots = nLayers + 4;
  const C_ABORT = 0;
  const C_TOKENS = 4;
  const C_SLOTS = align(C_TOKENS + MAX_TOKENS_PER_DISPATCH + 1, 16);
  const SLOT_WORDS = 4;
  const ctlSize = C_SLOTS + maxSlots * SLOT_WORDS;

  const dw = Math.min(headDim, wg);
  const consts: Record<string, number> = {
    WG: wg, LANES: lanes, TILE: tile,
    DIM: dim, HIDDEN: hiddenDim, NH: nHeads, NKV: nKvHeads, HD: headDim, QD: qDim, KVD: kvDim,
    GROUP: nHeads / nKvHeads, VOCAB: vocabSize, SEQ: context, NLAYERS: nLayers,
    DW: dw, PG: Math.floor(wg / dw),
    EMB_OFF, FINAL_NORM_OFF, ROPE_OFF, WCLS_OFF,
    ATTN_STRIDE, ATTN_NORM_OFF, WQKV_OFF, BQKV_OFF, WO_OFF,
    FFN_STRIDE, FFN_NORM_OFF, W1_OFF, W3_STRIDE, W2_STRIDE,
    A_X, A_H, A_XN, A_Q, A_K, A_V, A_ATT, A_G, A_LOGITS,
    C_ABORT, C_TOKENS, C_SLOTS, SLOT_WORDS,
  };
  return {
    config: c, context, kernel, tile, consts, maxSlots,
    sizes: {
      emb: embSize, attn: ATTN_STRIDE * nLayers, ffn1: FFN_STRIDE * nLayers, ffn3: W3_STRIDE * nLayers, ffn2: W2_STRIDE * nLayers,
      kv: nLayers * 2 * context * kvDim, act: actSize, ctl: ctlSize,
    },
  };
}

/** Packs the model's weights into the four stacked weight buffers of `layout`. */
export function packWeights(model: LoadedModel, layout: Layout): Record<'emb' | 'attn' | 'ffn1' | 'ffn3' | 'ffn2', Float32Array> {
  const c = model.config;
  const k = layout.consts;
  const w0 = model.weights;
  // TODO packed upload
  const w = { ...w0, tokEmb: dequantize(w0.tokEmb), wcls: dequantize(w0.wcls), layers: w0.layers.map((l) => ({ ...l, wq: dequantize(l.wq), wk: dequantize(l.wk), wv: dequantize(l.wv), wo: dequantize(l.wo), w1: dequantize(l.w1), w2: dequantize(l.w2), w3: dequantize(l.w3) })) };
  const emb = new Float32Array(layout.sizes.emb);
  emb.set(w.tokEmb, k.EMB_OFF);
  emb.set(w.finalNorm, k.FINAL_NORM_OFF);
  const rope = ropeTable({ ...c, seqLen: layout.context });
  emb.set(Float32Array.from(rope), k.ROPE_OFF);
  if (!c.tiedEmbeddings) emb.set(w.wcls, k.WCLS_OFF);

  const attn = new Float32Array(layout.sizes.attn);
  const ffn1 = new Float32Array(layout.sizes.ffn1);
  const ffn3 = new Float32Array(layout.sizes.ffn3);
  const ffn2 = new Float32Array(layout.sizes.ffn2);
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  w.layers.forEach((l, n) => {
    const a = n * k.ATTN_STRIDE;
    attn.set(l.attnNorm, a + k.ATTN_NORM_OFF);
    attn.set(l.wq, a + k.WQKV_OFF);
    attn.set(l.wk, a + k.WQKV_OFF + qDim * c.dim);
    attn.set(l.wv, a + k.WQKV_OFF + (qDim + kvDim) * c.dim);
    if (c.attentionBias) {
      if (!l.bq || !l.bk || !l.bv) throw new KloopError(`${model.source}: layer ${n} lacks the q/k/v biases its config announces`);
      attn.set(l.bq, a + k.BQKV_OFF);
      attn.set(l.bk, a + k.BQKV_OFF + qDim);
      attn.set(l.bv, a + k.BQKV_OFF + qDim + kvDim);
    }
    attn.set(l.wo, a + k.WO_OFF);
    const f = n * k.FFN_STRIDE;
    ffn1.set(l.ffnNorm, f + k.FFN_NORM_OFF);
    ffn1.set(l.w1, f + k.W1_OFF);
    ffn3.set(l.w3, n * k.W3_STRIDE);
    ffn2.set(l.w2, n * k.W2_STRIDE);
  });
  return { emb, attn, ffn1, ffn3, ffn2 };
}
