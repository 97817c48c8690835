/**
 * The stage table: every stage of a decode step declared ONCE (src/engine/schedule.ts builds
 * the step from it): how its work is split across workgroups, which activation buffers it reads
 * and writes (planBarriers derives the grid barriers from these), its output rows (the per-op
 * work items), and its WGSL, instantiated from one role body of src/kernels-wgsl for a layout,
 * in the decode form and the batched (T tokens per weight read) form.
 */
import { attentionParallelWgsl, attentionSerialWgsl } from '../kernels-wgsl/attention.wgsl.ts';
import { attentionBatchedWgsl, ROPE_APPEND_BATCHED_WGSL, attentionBatchedSubgroupWgsl, embedBatchedWgsl, rmsnormBatchedWgsl } from '../kernels-wgsl/batched.wgsl.ts';
import { subgroupSharing } from '../kernels-wgsl/subgroup.wgsl.ts';
import type { Handoff } from '../kernels-wgsl/common.wgsl.ts';
import { embedWgsl } from '../kernels-wgsl/embed.wgsl.ts';
import { matmulWgsl } from '../kernels-wgsl/matmul.wgsl.ts';
import { type MatOperand, type MatSegment, matvecLanes, matvecWgsl } from '../kernels-wgsl/matvec.wgsl.ts';
import { rmsnormWgsl } from '../kernels-wgsl/rmsnorm.wgsl.ts';
import { ROPE_APPEND_WGSL } from '../kernels-wgsl/rope_append.wgsl.ts';
import { sampleWgsl } from '../kernels-wgsl/sample.wgsl.ts';
import type { ModelConfig } from '../loader/types.ts';
import type { Layout, SlotName } from './layout.ts';

/** The WGSL storage buffer of each weight buffer. */
export const WBUF = { emb: 'w_emb', attn: 'w_attn', ffn1: 'w_ffn1', ffn3: 'w_ffn3', ffn2: 'w_ffn2' } as const;

/** One matrix slot as a matvec operand segment starting at output row r0. */
export function segment(layout: Layout, name: SlotName, r0: number): MatSegment {
  const s = layout.slots[name];
  const types = [...new Set(s.types)];
  return {
    r0, rows: s.rows, types,
    base: s.stride ? `layer * ${s.stride} + ${s.off}` : s.off,
    typeOf: types.length > 1 ? `TY_${name.toUpperCase()}[layer]` : undefined,
  };
}

/** What a stage's WGSL instantiation needs of the layout. */
export interface StageContext {
  layout: Layout;
  c: ModelConfig;
  k: Record<string, number>;
  /** Matvec parameters shared by every decode matvec. */
  mv: { lanes: number; wg: number; tile: number; vec4: boolean; pad: boolean; direct: boolean; sg: number };
  /** Matmul parameters shared by every batched matvec. */
  mm: { lanes: number; wg: number; tileCols: number; vec4: boolean; sg: number; chunk: number; pad: boolean };
  /** The decode matvec parameters of a rows x cols matvec (mv with its lanes per row, matvecLanes). */
  mvAt(rows: number, cols: number): StageContext['mv'];
  /** The q/k/v bias term of the qkv epilogue ('' without biases). */
  bias: string;
  op(name: SlotName): MatOperand;
  seg(name: SlotName, r0: number): MatSegment;
}

export function stageContext(layout: Layout, handoff: Handoff): StageContext {
  const c = layout.config;
  const { wg, lanes } = layout.kernel;
  return {
    layout, c, k: layout.consts,
    mv: {
      lanes, wg, tile: layout.tile, vec4: layout.kernel.vec4 ?? false,
      pad: layout.kernel.padStaging === true, direct: layout.kernel.style === 'cpu' && handoff === 'plain',
      sg: layout.kernel.subgroups ?? 0,
    },
    mm: { lanes, wg, tileCols: layout.batch?.tileCols ?? 0, vec4: layout.kernel.vec4 ?? false, sg: layout.kernel.subgroups ?? 0, chunk: layout.batch?.chunk ?? 1, pad: layout.kernel.padStaging === true },
    mvAt(rows, cols) {
      return { ...this.mv, lanes: matvecLanes(layout.kernel, rows, cols) };
    },
    bias: c.attentionBias ? ' + w_attn_at(layer * ATTN_STRIDE + BQKV_OFF + r)' : '',
    op: (name) => ({ buf: WBUF[layout.slots[name].buf], segs: [segment(layout, name, 0)] }),
    seg: (name, r0) => segment(layout, name, r0),
  };
}

/** Activation buffers handed between stages (regions of the `act` buffer, or the KV cache). */
export type ActBuffer = 'x' | 'h' | 'xn' | 'q' | 'k' | 'v' | 'att' | 'g' | 'logits' | 'kv' | 'token';

/**
 * How a stage's work is divided among the workgroups of a dispatch:
 * - replicated: every workgroup computes the whole (small) result itself; the copies are
 *   bit-identical, so a consumer needs no barrier after it (per-op runs it in one workgroup);
 * - rows: output rows are split over workgroups (grid-stride over row tiles);
 * - kvHeads: one KV head (with its group of query heads) per work item.
 */
export type Partition = 'replicated' | 'rows' | 'kvHeads';

export type StageId =
  | 'embed'
  | 'attn_norm'
  | 'qkv'
  | 'rope_append'
  | 'attention'
  | 'wo_residual'
  | 'ffn_norm'
  | 'gate_up'
  | 'down_residual'
  | 'final_norm'
  | 'classifier'
  | 'sample';

export interface Read {
  buf: ActBuffer;
  /** 'own': only the part this work item owns under the stage's partition; 'all': everything. */
  access: 'own' | 'all';
}

export interface StageSpec {
  id: StageId;
  /** The WGSL role file in src/kernels-wgsl that holds its body. */
  role: 'embed' | 'rmsnorm' | 'matvec' | 'rope_append' | 'attention' | 'sample';
  partition: Partition;
  reads: Read[];
  writes: ActBuffer[];
  /** Addresses per-layer weights / KV (w[n], kv[n]). */
  perLayer: boolean;
  /** Output rows of a 'rows' stage: its work items are row tiles of these (stageItems). */
  rows?: (c: ModelConfig) => number;
  /** Columns of a 'rows' stage's matrix (its lanes per row follow rows and columns: matvecLanes). */
  cols?: (c: ModelConfig) => number;
  /** One line of what it computes (shapes from the config). */
  describe(c: ModelConfig): string;
  /** Its WGSL function for a layout (one role body of src/kernels-wgsl, instantiated). */
  wgsl(x: StageContext): string;
  /** Its batched form (T tokens per weight read; '' when it has none). */
  batched(x: StageContext): string;
}

const all = (buf: ActBuffer): Read => ({ buf, access: 'all' });
const own = (buf: ActBuffer): Read => ({ buf, access: 'own' });

export const STAGES: Record<StageId, StageSpec> = {
  embed: {
    id: 'embed', role: 'embed', partition: 'replicated', perLayer: false,
    reads: [all('token')], writes: ['x'],
    describe: (c) => `x(${c.dim}) = tok_emb[token]`,
    wgsl: (x) => embedWgsl(x.layout.slots.emb.types[0], x.c.dim),
    batched: (x) => embedBatchedWgsl(x.layout.slots.emb.types[0], x.c.dim),
  },
  attn_norm: {
    id: 'attn_norm', role: 'rmsnorm', partition: 'replicated', perLayer: true,
    reads: [all('x')], writes: ['xn'],
    describe: (c) => `xn(${c.dim}) = rmsnorm(x) * rms_att[n]`,
    wgsl: (x) => rmsnormWgsl({ name: 'attn_norm', input: 'A_X', output: 'A_XN', weights: 'w_attn', base: 'layer * ATTN_STRIDE + ATTN_NORM_OFF' }),
    batched: (x) => rmsnormBatchedWgsl({ name: 'attn_norm', input: 'B_X', output: 'B_XN', weights: 'w_attn', base: 'layer * ATTN_STRIDE + ATTN_NORM_OFF' }),
  },
  qkv: {
    id: 'qkv', role: 'matvec', partition: 'rows', perLayer: true, rows: (c) => (c.nHeads + 2 * c.nKvHeads) * c.headDim,
    cols: (c) => c.dim,
    reads: [all('xn')], writes: ['q', 'k', 'v'],
    describe: (c) =>
      `q|k|v(${(c.nHeads + 2 * c.nKvHeads) * c.headDim}) = wqkv[n](${(c.nHeads + 2 * c.nKvHeads) * c.headDim}x${c.dim}) · xn` +
      (c.attentionBias ? ' + bqkv[n]' : ''),
    wgsl: (x) => matvecWgsl({
        ...x.mvAt(x.k.QD + 2 * x.k.KVD, x.c.dim), name: 'qkv', rows: x.k.QD + 2 * x.k.KVD, cols: x.c.dim, input: 'A_XN',
        a: { buf: 'w_attn', segs: [x.seg('wq', 0), x.seg('wk', x.k.QD), x.seg('wv', x.k.QD + x.k.KVD)] },
        epilogue: `st(A_Q + r, a0${x.bias});`,
      }),
    batched: (x) => matmulWgsl({
        ...x.mm, name: 'qkv', rows: x.k.QD + 2 * x.k.KVD, cols: x.c.dim, input: 'B_XN + tt * DIM',
        a: { buf: 'w_attn', segs: [x.seg('wq', 0), x.seg('wk', x.k.QD), x.seg('wv', x.k.QD + x.k.KVD)] },
        epilogue: `st(B_Q + tt * QKVR + r, v0${x.bias});`,
      }),
  },
  rope_append: {
    id: 'rope_append', role: 'rope_append', partition: 'kvHeads', perLayer: true,
    reads: [all('q'), all('k'), all('v')], writes: ['q', 'kv'],
    describe: (c) => `rotate q, k at pos; kv[n][pos](2x${c.nKvHeads * c.headDim}) = k, v`,
    wgsl: (x) => ROPE_APPEND_WGSL,
    batched: (x) => ROPE_APPEND_BATCHED_WGSL,
  },
  attention: {
    id: 'attention', role: 'attention', partition: 'kvHeads', perLayer: true,
    reads: [own('q'), own('kv')], writes: ['att'],
    describe: (c) => `att(${c.nHeads * c.headDim}) = softmax(q·K[n]ᵀ/√${c.headDim})·V[n], ${c.nHeads}/${c.nKvHeads} heads`,
    wgsl: (x) => x.layout.kernel.style === 'cpu' ? attentionSerialWgsl(x.c.headDim) : attentionParallelWgsl({ WG: x.k.WG, SEQ: x.k.SEQ, GROUP: x.k.GROUP, HD: x.k.HD }),
    // The subgroup form is the CPU adapters' (one invocation per row); GPUs keep the parallel form.
    batched: (x) => (subgroupSharing(x.mm) ? attentionBatchedSubgroupWgsl(x.c.headDim, x.mm.sg) : attentionBatchedWgsl(x.c.headDim, x.layout.kernel.style === 'cpu')),
  },
  wo_residual: {
    id: 'wo_residual', role: 'matvec', partition: 'rows', perLayer: true, rows: (c) => c.dim,
    cols: (c) => c.nHeads * c.headDim,
    reads: [all('att'), own('x')], writes: ['h'],
    describe: (c) => `h(${c.dim}) = x + wo[n](${c.dim}x${c.nHeads * c.headDim}) · att`,
    wgsl: (x) => matvecWgsl({
        ...x.mvAt(x.c.dim, x.k.QD), name: 'wo_residual', rows: x.c.dim, cols: x.k.QD, input: 'A_ATT', a: x.op('wo'),
        epilogue: 'st(A_H + r, ld(A_X + r) + a0);',
      }),
    batched: (x) => matmulWgsl({
        ...x.mm, name: 'wo_residual', rows: x.c.dim, cols: x.k.QD, input: 'B_ATT + tt * QD', a: x.op('wo'),
        epilogue: 'st(B_H + tt * DIM + r, ld(B_X + tt * DIM + r) + v0);',
      }),
  },
  ffn_norm: {
    id: 'ffn_norm', role: 'rmsnorm', partition: 'replicated', perLayer: true,
    reads: [all('h')], writes: ['xn'],
    describe: (c) => `xn(${c.dim}) = rmsnorm(h) * rms_ffn[n]`,
    wgsl: (x) => rmsnormWgsl({ name: 'ffn_norm', input: 'A_H', output: 'A_XN', weights: 'w_ffn1', base: 'layer * FFN_STRIDE + FFN_NORM_OFF' }),
    batched: (x) => rmsnormBatchedWgsl({ name: 'ffn_norm', input: 'B_H', output: 'B_XN', weights: 'w_ffn1', base: 'layer * FFN_STRIDE + FFN_NORM_OFF' }),
  },
  gate_up: {
    id: 'gate_up', role: 'matvec', partition: 'rows', perLayer: true, rows: (c) => c.hiddenDim,
    cols: (c) => c.dim,
    reads: [all('xn')], writes: ['g'],
    describe: (c) => `g(${c.hiddenDim}) = silu(w1[n] · xn) * (w3[n] · xn)`,
    wgsl: (x) => matvecWgsl({
        ...x.mvAt(x.c.hiddenDim, x.c.dim), name: 'gate_up', rows: x.c.hiddenDim, cols: x.c.dim, input: 'A_XN', a: x.op('w1'), b: x.op('w3'),
        epilogue: 'st(A_G + r, a0 / (1.0 + exp(-a0)) * a1);',
      }),
    batched: (x) => matmulWgsl({
        ...x.mm, name: 'gate_up', rows: x.c.hiddenDim, cols: x.c.dim, input: 'B_XN + tt * DIM', a: x.op('w1'), b: x.op('w3'),
        epilogue: 'st(B_G + tt * HIDDEN + r, v0 / (1.0 + exp(-v0)) * v1);',
      }),
  },
  down_residual: {
    id: 'down_residual', role: 'matvec', partition: 'rows', perLayer: true, rows: (c) => c.dim,
    cols: (c) => c.hiddenDim,
    reads: [all('g'), own('h')], writes: ['x'],
    describe: (c) => `x(${c.dim}) = h + w2[n](${c.dim}x${c.hiddenDim}) · g`,
    wgsl: (x) => matvecWgsl({
        ...x.mvAt(x.c.dim, x.c.hiddenDim), name: 'down_residual', rows: x.c.dim, cols: x.c.hiddenDim, input: 'A_G', a: x.op('w2'),
        epilogue: 'st(A_X + r, ld(A_H + r) + a0);',
      }),
    batched: (x) => matmulWgsl({
        ...x.mm, name: 'down_residual', rows: x.c.dim, cols: x.c.hiddenDim, input: 'B_G + tt * HIDDEN', a: x.op('w2'),
        epilogue: 'st(B_X + tt * DIM + r, ld(B_H + tt * DIM + r) + v0);',
      }),
  },
  final_norm: {
    id: 'final_norm', role: 'rmsnorm', partition: 'replicated', perLayer: false,
    reads: [all('x')], writes: ['xn'],
    describe: (c) => `xn(${c.dim}) = rmsnorm(x) * rms_final`,
    wgsl: (x) => rmsnormWgsl({ name: 'final_norm', input: 'A_X', output: 'A_XN', weights: 'w_emb', base: 'FINAL_NORM_OFF' }),
    batched: (x) => rmsnormBatchedWgsl({ name: 'final_norm', input: 'B_X', output: 'B_XN', weights: 'w_emb', base: 'FINAL_NORM_OFF' }),
  },
  classifier: {
    id: 'classifier', role: 'matvec', partition: 'rows', perLayer: false, rows: (c) => c.vocabSize,
    cols: (c) => c.dim,
    reads: [all('xn')], writes: ['logits'],
    describe: (c) => `logits(${c.vocabSize}) = wcls(${c.vocabSize}x${c.dim}) · xn`,
    wgsl: (x) => matvecWgsl({
        ...x.mvAt(x.c.vocabSize, x.c.dim), name: 'classifier', rows: x.c.vocabSize, cols: x.c.dim, input: 'A_XN', a: x.op('cls'),
        epilogue: 'st(A_LOGITS + r, a0);',
      }),
    batched: (x) => matmulWgsl({
        ...x.mm, name: 'classifier', rows: x.c.vocabSize, cols: x.c.dim, input: 'B_XN + tt * DIM', a: x.op('cls'), forcedOnly: true,
        epilogue: 'st(B_LOGITS + tt * VOCAB + r, v0);',
      }),
  },
  sample: {
    id: 'sample', role: 'sample', partition: 'replicated', perLayer: false,
    reads: [all('logits')], writes: ['token'],
    describe: () => `token = argmax or sample(logits)`,
    wgsl: (x) => sampleWgsl(x.layout.kernel.style ?? 'gpu'),
    batched: (x) => '',
  },
};

