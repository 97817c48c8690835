/**
 * Where everything lives on the device: the stacked weight buffers (w[n]: per-layer tensors at
 * layer * stride), the KV cache (kv[n]), the activation regions and the control words. The
 * offsets become WGSL constants, so every kernel shape addresses the same layout.
 */
import { KloopError } from '../errors.ts';
import type { LoadedModel, Matrix, ModelConfig, ModelWeights, WeightType } from '../loader/types.ts';
import { DEVICE_BLOCKS, deviceRowWords } from '../kernels-wgsl/dequant.wgsl.ts';
import { FORMATS, isPacked, matrixType } from '../loader/quant.ts';
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
   * Weights read as vec4<f32> (16-byte loads). Default: on when every matrix width is a multiple
   * of 4, for the 'cpu' style only when every matrix is f32 (see makeLayout).
   */
  vec4?: boolean;
  /**
   * Pad the matvec's staged input by a word per 32 values (see MatvecParams.pad), so that lanes
   * reading different 32-value units (or 8-value f16 units, or vec4 words) hit different
   * shared-memory banks. Default: on for the 'gpu' style (unmeasured on a GPU since it became the
   * default: bench/RESULTS.md), off for 'cpu'.
   */
  padStaging?: boolean;
  /**
   * The workgroup runs as one SIMD row in lockstep (measured per adapter, engine/lockstep.ts):
   * kernels without grid sync are composed without barriers (kernels-wgsl/lockstep.wgsl.ts).
   */
  lockstep?: boolean;
  /**
   * f32 weights read from 2D rgba32uint textures instead of storage buffers (engine/weight-store.ts):
   * llvmpipe fetches a texel for its 8 lanes without the per-lane branches (active lane, bounds)
   * of a storage-buffer gather; SwiftShader also decodes faster from them (stories260K: looped:16
   * 553-602 against 443-485 tokens/s, per-layer 359 against 295). Needs vec4 weights. 'auto': on
   * for vec4 weights of at most TEXTURE_AUTO_MAX_BYTES (the CPU adapters' default, where it was
   * measured to pay, device.ts); makeLayout resolves it to a boolean. Default off.
   */
  texture?: boolean | 'auto';
  /**
   * Subgroup rows of this width (kernels-wgsl/subgroup.wgsl.ts), the adapter's measured width
   * where it applies (device.ts); 0: off. With one invocation per matvec row (CPU adapters,
   * width 4 or 8) the f32 and block-encoded rows share input values over them: each lane loads one
   * column, the row reads the others with subgroupBroadcast. With several lanes per row (GPUs)
   * the matvecs and matmuls sum a row's lanes with subgroup operations instead of a
   * shared-memory tree.
   */
  subgroups?: number;
}

const align = (n: number, a = 64): number => Math.ceil(n / a) * a;

/** Words of workgroup memory that `cols` staged input values take, padded by a word per 32 or not (KernelOptions.padStaging). */
export const stagedWords = (cols: number, pad: boolean): number => (pad ? cols + Math.ceil(cols / 32) : cols);

/** The most staged input values that `words` of workgroup memory hold (the inverse of stagedWords, rounded down). */
export const stagedFit = (words: number, pad: boolean): number => (pad ? Math.floor((words * 32) / 33) : words);

/**
 * texture: 'auto' picks textures for f32 weights up to this size: where they stay in the CPU's
 * caches the texel fetch is what bounds the matvec (lavapipe, stories260K, 1 MB: looped:16
 * 1.2-1.5x faster than storage buffers); weights streamed from memory gain nothing (the
 * stories15M shape, 61 MB: 0.8-1.0x).
 */
export const TEXTURE_AUTO_MAX_BYTES = 16 * 2 ** 20;

/** The weight matrices of a decoder layer, by role. */
export const LAYER_MATRICES = ['wq', 'wk', 'wv', 'wo', 'w1', 'w3', 'w2'] as const;
export type LayerMatrix = (typeof LAYER_MATRICES)[number];

/** The encoding of every weight matrix of a model (what the device holds and the kernels decode). */
export interface WeightTypes {
  emb: WeightType;
  cls: WeightType;
  layers: Record<LayerMatrix, WeightType>[];
}

export function weightTypesOf(w: ModelWeights): WeightTypes {
  return {
    emb: matrixType(w.tokEmb),
    cls: matrixType(w.wcls),
    layers: w.layers.map((l) => Object.fromEntries(LAYER_MATRICES.map((m) => [m, matrixType(l[m])])) as Record<LayerMatrix, WeightType>),
  };
}

/** Every matrix in float32 (synthetic shapes, the device model). */
export function f32Types(c: ModelConfig): WeightTypes {
  const l = Object.fromEntries(LAYER_MATRICES.map((m) => [m, 'f32'])) as Record<LayerMatrix, WeightType>;
  return { emb: 'f32', cls: 'f32', layers: Array.from({ length: c.nLayers }, () => ({ ...l })) };
}

/**
 * Where one weight matrix (or one per layer) lives: buffer, word offset inside the layer's
 * stride (a WGSL constant), and its encoding per layer. A layer's slot is sized for the largest
 * encoding any layer uses, so every layer shares the offsets.
 */
export interface MatrixSlot {
  buf: 'emb' | 'attn' | 'ffn1' | 'ffn3' | 'ffn2';
  /** WGSL constant holding the word offset. */
  off: string;
  /** WGSL constant of the per-layer stride, or undefined for the embedding buffer. */
  stride?: string;
  rows: number;
  cols: number;
  /** Encoding of each layer (one entry outside the layers). */
  types: WeightType[];
}

export type SlotName = LayerMatrix | 'emb' | 'cls';

export interface Layout {
  config: ModelConfig;
  /** Positions the KV cache holds (<= config.seqLen). */
  context: number;
  kernel: KernelOptions;
  tile: number;
  /** Constants of the WGSL header. */
  consts: Record<string, number>;
  /** Word counts of each buffer (weights: u32 words; kv, act, ctl: 4-byte values). */
  sizes: { emb: number; attn: number; ffn1: number; ffn3: number; ffn2: number; kv: number; act: number; ctl: number };
  maxSlots: number;
  /** Every weight matrix's place and encoding. */
  slots: Record<SlotName, MatrixSlot>;
  /** Weight bytes one decode step reads (packed sizes: every layer's norms and matrices, the classifier, one embedding row). */
  weightBytesPerToken: number;
  /** Set on the layout of the batched forward (batch-layout.ts): its stages process T tokens. */
  batch?: { chunk: number; tileCols: number };
}

export function makeLayout(c: ModelConfig, kernelIn: KernelOptions, context: number, workgroupStorage: number, typesIn?: WeightTypes): Layout {
  let kernel = kernelIn;
  const types = typesIn ?? f32Types(c);
  const { dim, hiddenDim, nHeads, nKvHeads, headDim, vocabSize, nLayers } = c;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const qkvRows = qDim + 2 * kvDim;
  if (headDim % 2 !== 0) throw new KloopError(`model: head size ${headDim} is odd; RoPE needs pairs`);
  if (nHeads % nKvHeads !== 0) throw new KloopError(`model: ${nHeads} heads not a multiple of ${nKvHeads} KV heads`);
  if (types.layers.length !== nLayers) throw new KloopError(`model: weight types for ${types.layers.length} layers, config has ${nLayers}`);
  const { wg, lanes } = kernel;
  if ((wg & (wg - 1)) !== 0 || (lanes & (lanes - 1)) !== 0 || lanes > wg) {
    throw new KloopError(`kernel: workgroup size ${wg} and lanes ${lanes} must be powers of two with lanes <= size`);
  }
  // Workgroup memory: xs (TILE) + red, redi (WG) + scores (context) + qs (HD) + a few words.
  const fixed = (2 * wg + context + headDim + 16) * 4;
  const room = Math.floor((workgroupStorage - fixed) / 4);
  if (room < 64) {
    throw new KloopError(
      `context ${context}: attention scores do not fit this adapter's ${workgroupStorage} bytes of workgroup memory; use a shorter context`,
    );
  }
  const maxCols = Math.max(dim, qDim, hiddenDim);
  // The input tile of a matvec: the whole input vector when it fits (staged once per stage).
  // Pad the staged input by a word per 32 (bank-conflict-free unit reads on GPUs, matvec.wgsl.ts).
  const pad = kernel.padStaging ?? (kernel.style ?? 'gpu') === 'gpu';
  const fit = Math.floor(Math.min(stagedFit(room, pad), align(maxCols), 8192) / 64) * 64;
  const tile = kernel.tile === undefined ? fit : Math.min(kernel.tile, fit);
  if (!Number.isInteger(tile) || tile < 1) throw new KloopError(`kernel: tile ${kernel.tile} must be a positive integer`);
  // Packed rows are walked in units of up to 32 values: a tile that splits a row must keep units whole.
  const packedAny = [types.emb, types.cls, ...types.layers.flatMap((l) => Object.values(l))].some((t) => t !== 'f32');
  if (packedAny && tile < maxCols && tile % 32 !== 0) throw new KloopError(`kernel: tile ${tile} must be a multiple of 32 for packed weights`);
  const widths4 = [dim, qDim, hiddenDim].every((n) => n % 4 === 0) && tile % 4 === 0;
  if (kernel.vec4 && !widths4) throw new KloopError(`kernel: vec4 weights need matrix widths and the tile (${tile}) to be multiples of 4`);
  // GPUs: vec4 words always. CPU adapters: only when every matrix is f32 (llvmpipe reads a vec4
  // word per lane 1.35x faster than four scalar words, but a packed decoder reading single words
  // out of vec4 ones would load four times what it uses).
  kernel = { ...kernel, vec4: kernel.vec4 ?? (widths4 && (kernel.style === 'gpu' || !packedAny)), padStaging: pad };
  if (kernel.texture === true && !kernel.vec4) throw new KloopError('kernel: texture weights need vec4 weights (every matrix f32, widths multiples of 4)');

  const words = (t: WeightType, rows: number, cols: number): number => {
    try {
      return rows * deviceRowWords(t, cols);
    } catch {
      throw new KloopError(`model: a ${t} matrix of width ${cols} does not divide into ${t} blocks`);
    }
  };
  const layerTypes = (m: LayerMatrix): WeightType[] => types.layers.map((l) => l[m]);
  const maxWords = (m: LayerMatrix, rows: number, cols: number): number => Math.max(...layerTypes(m).map((t) => words(t, rows, cols)));

  const ropeFloats = context * headDim; // (context, headDim/2, 2)
  const EMB_OFF = 0;
  const FINAL_NORM_OFF = align(words(types.emb, vocabSize, dim));
  const ROPE_OFF = align(FINAL_NORM_OFF + dim);
  const WCLS_OFF = c.tiedEmbeddings ? EMB_OFF : align(ROPE_OFF + ropeFloats);
  const embSize = c.tiedEmbeddings ? ROPE_OFF + ropeFloats : WCLS_OFF + words(types.cls, vocabSize, dim);

  const ATTN_NORM_OFF = 0;
  const WQ_OFF = align(dim);
  const WK_OFF = align(WQ_OFF + maxWords('wq', qDim, dim));
  const WV_OFF = align(WK_OFF + maxWords('wk', kvDim, dim));
  const BQKV_OFF = align(WV_OFF + maxWords('wv', kvDim, dim));
  const WO_OFF = align(BQKV_OFF + (c.attentionBias ? qkvRows : 0));
  const ATTN_STRIDE = align(WO_OFF + maxWords('wo', dim, qDim));

  // Gate and up in separate buffers: each stays under the binding limit twice as long.
  const FFN_NORM_OFF = 0;
  const W1_OFF = align(dim);
  const FFN_STRIDE = align(W1_OFF + maxWords('w1', hiddenDim, dim));
  const W3_STRIDE = align(maxWords('w3', hiddenDim, dim));
  const W2_STRIDE = align(maxWords('w2', dim, hiddenDim));

  const slots: Record<SlotName, MatrixSlot> = {
    emb: { buf: 'emb', off: 'EMB_OFF', rows: vocabSize, cols: dim, types: [types.emb] },
    cls: { buf: 'emb', off: 'WCLS_OFF', rows: vocabSize, cols: dim, types: [c.tiedEmbeddings ? types.emb : types.cls] },
    wq: { buf: 'attn', off: 'WQ_OFF', stride: 'ATTN_STRIDE', rows: qDim, cols: dim, types: layerTypes('wq') },
    wk: { buf: 'attn', off: 'WK_OFF', stride: 'ATTN_STRIDE', rows: kvDim, cols: dim, types: layerTypes('wk') },
    wv: { buf: 'attn', off: 'WV_OFF', stride: 'ATTN_STRIDE', rows: kvDim, cols: dim, types: layerTypes('wv') },
    wo: { buf: 'attn', off: 'WO_OFF', stride: 'ATTN_STRIDE', rows: dim, cols: qDim, types: layerTypes('wo') },
    w1: { buf: 'ffn1', off: 'W1_OFF', stride: 'FFN_STRIDE', rows: hiddenDim, cols: dim, types: layerTypes('w1') },
    w3: { buf: 'ffn3', off: 'W3_OFF', stride: 'W3_STRIDE', rows: hiddenDim, cols: dim, types: layerTypes('w3') },
    w2: { buf: 'ffn2', off: 'W2_OFF', stride: 'W2_STRIDE', rows: dim, cols: hiddenDim, types: layerTypes('w2') },
  };
  const matBytes = (s: MatrixSlot): number => s.types.reduce((a, t) => a + words(t, s.rows, s.cols) * 4, 0);
  const weightBytesPerToken =
    LAYER_MATRICES.reduce((a, m) => a + matBytes(slots[m]), 0) +
    nLayers * (2 * dim + (c.attentionBias ? qkvRows : 0)) * 4 +
    matBytes(slots.cls) + deviceRowWords(types.emb, dim) * 4 + dim * 4 + headDim * 4;

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
    WG: wg, LANES: lanes, TILE: tile, XS_LEN: stagedWords(tile, pad), RED_LEN: wg,
    DIM: dim, HIDDEN: hiddenDim, NH: nHeads, NKV: nKvHeads, HD: headDim, QD: qDim, KVD: kvDim,
    GROUP: nHeads / nKvHeads, VOCAB: vocabSize, SEQ: context, NLAYERS: nLayers,
    DW: dw, PG: Math.floor(wg / dw),
    EMB_OFF, FINAL_NORM_OFF, ROPE_OFF, WCLS_OFF,
    ATTN_STRIDE, ATTN_NORM_OFF, WQ_OFF, WK_OFF, WV_OFF, BQKV_OFF, WO_OFF,
    FFN_STRIDE, FFN_NORM_OFF, W1_OFF, W3_OFF: 0, W2_OFF: 0, W3_STRIDE, W2_STRIDE,
    A_X, A_H, A_XN, A_Q, A_K, A_V, A_ATT, A_G, A_LOGITS,
    C_ABORT, C_TOKENS, C_SLOTS, SLOT_WORDS,
  };
  const sizes = {
    emb: embSize, attn: ATTN_STRIDE * nLayers, ffn1: FFN_STRIDE * nLayers, ffn3: W3_STRIDE * nLayers, ffn2: W2_STRIDE * nLayers,
    kv: nLayers * 2 * context * kvDim, act: actSize, ctl: ctlSize,
  };
  if (kernel.texture === 'auto') kernel = { ...kernel, texture: kernel.vec4 === true && weightBufferBytes({ sizes }) <= TEXTURE_AUTO_MAX_BYTES };
  if (kernel.texture) {
    // 4096 texels (64 KiB) a row, 8192 when a buffer would need more rows than 8192 (the
    // spec's guaranteed texture size).
    const texels = Math.ceil(Math.max(sizes.emb, sizes.attn, sizes.ffn1, sizes.ffn3, sizes.ffn2) / 4);
    consts.TEX_SHIFT = texels > 4096 * 8192 ? 13 : 12;
  }
  return {
    config: c, context, kernel, tile, consts, maxSlots, slots, weightBytesPerToken, sizes,
  };
}

/** Bytes the weight buffers take on the device (their words; texture rows pad this, weight-store.ts). */
export function weightBufferBytes(layout: Pick<Layout, 'sizes'>): number {
  const s = layout.sizes;
  return (s.emb + s.attn + s.ffn1 + s.ffn3 + s.ffn2) * 4;
}

/**
 * Writes matrix `m` (rows x cols) into `out` at word `at` in its device encoding: f32 values as
 * their bits, 16-bit values two to a word, quantized blocks word-aligned (DEVICE_BLOCKS).
 */
export function writeMatrix(out: Uint32Array, at: number, m: Matrix, rows: number, cols: number, what: string): void {
  if (!isPacked(m)) {
    if (m.length !== rows * cols) throw new KloopError(`${what}: ${m.length} values, expected ${rows}x${cols}`);
    new Float32Array(out.buffer, out.byteOffset + at * 4, m.length).set(m);
    return;
  }
  if (m.rows !== rows || m.cols !== cols) throw new KloopError(`${what}: a ${m.rows}x${m.cols} matrix, expected ${rows}x${cols}`);
  const f = FORMATS[m.type];
  const d = DEVICE_BLOCKS[m.type];
  const bytes = new Uint8Array(out.buffer, out.byteOffset + at * 4, rows * deviceRowWords(m.type, cols) * 4);
  if (m.type === 'f16' || m.type === 'bf16') {
    bytes.set(m.data);
    return;
  }
  const blocks = (rows * cols) / f.blockElems;
  const db = d.words * 4;
  for (let i = 0; i < blocks; i++) {
    const src = i * f.blockBytes;
    const dst = i * db;
    if (d.headPad) {
      bytes[dst] = m.data[src];
      bytes[dst + 1] = m.data[src + 1];
      bytes.set(m.data.subarray(src + 2, src + f.blockBytes), dst + 2 + d.headPad);
    } else {
      bytes.set(m.data.subarray(src, src + f.blockBytes), dst);
    }
  }
}

/** Packs the model's weights into the five stacked weight buffers of `layout` (u32 words). */
export function packWeights(model: LoadedModel, layout: Layout): Record<'emb' | 'attn' | 'ffn1' | 'ffn3' | 'ffn2', Uint32Array> {
  const c = model.config;
  const k = layout.consts;
  const w = model.weights;
  const S = layout.slots;
  const f32 = (out: Uint32Array, at: number, v: ArrayLike<number>) => new Float32Array(out.buffer, out.byteOffset + at * 4, v.length).set(v);
  const emb = new Uint32Array(layout.sizes.emb);
  writeMatrix(emb, k.EMB_OFF, w.tokEmb, c.vocabSize, c.dim, 'token embedding');
  f32(emb, k.FINAL_NORM_OFF, w.finalNorm);
  f32(emb, k.ROPE_OFF, ropeTable({ ...c, seqLen: layout.context }));
  if (!c.tiedEmbeddings) writeMatrix(emb, k.WCLS_OFF, w.wcls, c.vocabSize, c.dim, 'classifier');

  const attn = new Uint32Array(layout.sizes.attn);
  const ffn1 = new Uint32Array(layout.sizes.ffn1);
  const ffn3 = new Uint32Array(layout.sizes.ffn3);
  const ffn2 = new Uint32Array(layout.sizes.ffn2);
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const bufs = { attn, ffn1, ffn3, ffn2 };
  w.layers.forEach((l, n) => {
    const a = n * k.ATTN_STRIDE;
    f32(attn, a + k.ATTN_NORM_OFF, l.attnNorm);
    for (const m of LAYER_MATRICES) {
      const s = S[m];
      const base = n * k[s.stride!] + k[s.off];
      writeMatrix(bufs[s.buf as keyof typeof bufs], base, l[m], s.rows, s.cols, `layer ${n} ${m}`);
    }
    if (c.attentionBias) {
      if (!l.bq || !l.bk || !l.bv) throw new KloopError(`${model.source}: layer ${n} lacks the q/k/v biases its config announces`);
      f32(attn, a + k.BQKV_OFF, l.bq);
      f32(attn, a + k.BQKV_OFF + qDim, l.bk);
      f32(attn, a + k.BQKV_OFF + qDim + kvDim, l.bv);
    }
    f32(ffn1, n * k.FFN_STRIDE + k.FFN_NORM_OFF, l.ffnNorm);
  });
  return { emb, attn, ffn1, ffn3, ffn2 };
}
