/**
 * Write a LoadedModel as a GGUF v3 file that llama.cpp reads: llama-architecture metadata, the
 * sentencepiece vocabulary as tokenizer.ggml.* (tokenizer.ggml.model "llama"), wq/wk in the
 * adjacent-pair RoPE order (kloop's own, and llama.cpp's for the llama arch), norms F32, and the
 * weight matrices in the requested type.
 *
 * Per-tensor types follow llama.cpp's quantizer (llama-quant.cpp, no importance matrix):
 * - 1-D tensors (norms) stay F32; with --type f32 / f16 every matrix is F32 / F16.
 * - The classifier (output.weight, or token_embd.weight when the embeddings are tied) gets Q6_K
 *   unless the type is Q8_0 (and Q8_0 when its rows do not fit the type's block).
 * - q4_k is llama.cpp's Q4_K_M mix: attn_v and ffn_down of the layers use_more_bits picks
 *   (the first and last eighth, and every third in between) get Q6_K.
 * - Rows that are not a multiple of the block fall back: Q4_K -> Q5_0, Q6_K -> Q8_0, and to F16
 *   when the fallback does not fit either (or for Q4_0 / Q8_0 themselves, as the llama.cpp that
 *   wrote the shared quantized files does).
 */
import { open } from 'node:fs/promises';
import type { LoadedModel, Matrix } from './types.ts';
import { KloopError } from '../errors.ts';
import { fileError } from './util.ts';
import { FORMATS, dequantize, isPacked, rowBytes } from './quant.ts';
import { type QuantizeType, fitsRows, quantError, quantizeMatrix } from './quantize.ts';
import { JsonTokenizer, PieceType } from './tokenizer.ts';

/** The --type values of GGUF output. */
export const GGUF_OUT_TYPES = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k', 'q6_k'] as const;
export type GgufOutType = (typeof GGUF_OUT_TYPES)[number];

/** llama_ftype of each output type (general.file_type); q4_k is MOSTLY_Q4_K_M. */
const FILE_TYPE: Record<GgufOutType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k: 15, q6_k: 18 };

type TensorType = 'f32' | QuantizeType;

/** Where a matrix sits, for the per-tensor type choice. */
export interface TensorRole {
  /** GGUF name, e.g. "blk.3.attn_v.weight". */
  name: string;
  /** Row length (ne[0]). */
  cols: number;
  /** The classifier: output.weight, or token_embd.weight when the embeddings are tied. */
  classifier: boolean;
  /** Layer index and count (for the Q4_K_M mix). */
  layer?: number;
  nLayers: number;
}

const useMoreBits = (i: number, n: number): boolean => i < Math.floor(n / 8) || i >= Math.floor((7 * n) / 8) || (i - Math.floor(n / 8)) % 3 === 2;

/** The type llama.cpp's quantizer gives matrix `t` of a model converted to `type`. */
export function ggufTensorType(type: GgufOutType, t: TensorRole): TensorType {
  if (type === 'f32' || type === 'f16') return type;
  let want: TensorType = type;
  if (t.classifier) {
    if (!fitsRows(want, t.cols)) want = 'q8_0';
    else if (want !== 'q8_0') want = 'q6_k';
  } else if (type === 'q4_k' && t.layer !== undefined) {
    if (/\.attn_v\.weight$/.test(t.name) && useMoreBits(t.layer, t.nLayers)) want = 'q6_k';
    if (/\.ffn_down\.weight$/.test(t.name) && useMoreBits(t.layer, t.nLayers)) want = 'q6_k';
  }
  if (!fitsRows(want, t.cols)) {
    const fallback: TensorType = want === 'q4_k' ? 'q5_0' : want === 'q6_k' ? 'q8_0' : 'f16';
    want = fitsRows(fallback, t.cols) ? fallback : 'f16';
  }
  return want;
}

/** GGUF metadata value types. */
const T = { u32: 4, i32: 5, f32: 6, bool: 7, str: 8, arr: 9 } as const;
type Kv = { key: string } & (
  | { type: 'u32' | 'i32' | 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'str'; value: string }
  | { type: 'arr'; elem: 'str'; value: string[] }
  | { type: 'arr'; elem: 'f32' | 'i32'; value: ArrayLike<number> }
);

/** A little-endian byte builder. */
class Bytes {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length;
    while (size < this.length + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  u32(v: number): void {
    this.grow(4);
    this.dv.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.grow(4);
    this.dv.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.grow(4);
    this.dv.setFloat32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.grow(8);
    this.dv.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  u8(v: number): void {
    this.grow(1);
    this.buf[this.length++] = v;
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  pad(align: number): void {
    while (this.length % align) this.u8(0);
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeKv(b: Bytes, kv: Kv): void {
  b.str(kv.key);
  b.u32(T[kv.type]);
  switch (kv.type) {
    case 'u32': return b.u32(kv.value);
    case 'i32': return b.i32(kv.value);
    case 'f32': return b.f32(kv.value);
    case 'bool': return b.u8(kv.value ? 1 : 0);
    case 'str': return b.str(kv.value);
    case 'arr':
      b.u32(T[kv.elem]);
      b.u64(kv.value.length);
      if (kv.elem === 'str') for (const s of kv.value as string[]) b.str(s);
      else for (let i = 0; i < kv.value.length; i++) (kv.elem === 'f32' ? b.f32(kv.value[i]!) : b.i32(kv.value[i]!));
  }
}

/** One tensor to write: its GGUF name, ne (innermost first), type and bytes. */
export interface GgufTensorOut {
  name: string;
  ne: number[];
  type: TensorType;
  data: Uint8Array;
}

const ALIGN = 32;

/** The bytes of a GGUF v3 file holding `kvs` and `tensors`. */
export function ggufBytes(kvs: Kv[], tensors: GgufTensorOut[]): { header: Uint8Array; offsets: number[]; dataBytes: number } {
  const b = new Bytes();
  b.u32(0x46554747); // "GGUF"
  b.u32(3);
  b.u64(tensors.length);
  b.u64(kvs.length);
  for (const kv of kvs) writeKv(b, kv);
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    b.str(t.name);
    b.u32(t.ne.length);
    for (const d of t.ne) b.u64(d);
    b.u32(FORMATS[t.type].ggml);
    b.u64(off);
    offsets.push(off);
    off += Math.ceil(t.data.byteLength / ALIGN) * ALIGN;
  }
  b.pad(ALIGN);
  return { header: b.bytes(), offsets, dataBytes: off };
}

/** What convertToGguf wrote: each tensor's type and quantization error. */
export interface GgufReport {
  tensors: { name: string; type: TensorType; rel: number }[];
  bytes: number;
}

/** Write `model` to `outPath` as GGUF v3 with matrices of `type` (chosen per tensor as llama.cpp does). */
export async function convertToGguf(model: LoadedModel, outPath: string, type: GgufOutType): Promise<GgufReport> {
  if (!(GGUF_OUT_TYPES as readonly string[]).includes(type)) {
    throw new KloopError(`--type: unknown type "${type}" (one of ${GGUF_OUT_TYPES.join(', ')})`);
  }
  const c = model.config;
  const w = model.weights;
  if (c.attentionBias) throw fileError(model.source, 'GGUF output supports llama-architecture models (no q/k/v biases); this model has them');
  const tok = model.tokenizer;
  const spm = tok instanceof JsonTokenizer ? tok.spm : null;
  if (!spm) {
    throw fileError(model.source, 'GGUF output needs a sentencepiece vocabulary (a llama2.c tokenizer or a GGUF model); this model has only a tokenizer.json');
  }
  const n = spm.pieces.length;
  if (n > c.vocabSize) throw fileError(model.source, `the vocabulary has ${n} pieces, more than the model's ${c.vocabSize}`);

  const kvs: Kv[] = [
    { key: 'general.architecture', type: 'str', value: 'llama' },
    { key: 'general.name', type: 'str', value: model.name },
    { key: 'general.file_type', type: 'u32', value: FILE_TYPE[type] },
    { key: 'general.quantization_version', type: 'u32', value: 2 },
    { key: 'llama.vocab_size', type: 'u32', value: c.vocabSize },
    { key: 'llama.context_length', type: 'u32', value: c.seqLen },
    { key: 'llama.embedding_length', type: 'u32', value: c.dim },
    { key: 'llama.block_count', type: 'u32', value: c.nLayers },
    { key: 'llama.feed_forward_length', type: 'u32', value: c.hiddenDim },
    { key: 'llama.rope.dimension_count', type: 'u32', value: c.headDim },
    { key: 'llama.attention.head_count', type: 'u32', value: c.nHeads },
    { key: 'llama.attention.head_count_kv', type: 'u32', value: c.nKvHeads },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: 'f32', value: c.normEps },
    { key: 'llama.rope.freq_base', type: 'f32', value: c.ropeTheta },
  ];
  if (c.headDim * c.nHeads !== c.dim) {
    kvs.push({ key: 'llama.attention.key_length', type: 'u32', value: c.headDim }, { key: 'llama.attention.value_length', type: 'u32', value: c.headDim });
  }
  kvs.push(
    { key: 'tokenizer.ggml.model', type: 'str', value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: 'arr', elem: 'str', value: spm.pieces },
    { key: 'tokenizer.ggml.scores', type: 'arr', elem: 'f32', value: spm.scores },
    { key: 'tokenizer.ggml.token_type', type: 'arr', elem: 'i32', value: spm.types },
    { key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: spm.addBos ?? true },
    { key: 'tokenizer.ggml.add_eos_token', type: 'bool', value: false },
  );
  const unk = spm.unkId ?? Array.from(spm.types).indexOf(PieceType.Unknown);
  for (const [key, id] of [['bos', spm.bosId], ['eos', spm.eosId], ['unknown', unk]] as const) {
    if (id !== null && id >= 0) kvs.push({ key: `tokenizer.ggml.${key}_token_id`, type: 'u32', value: id });
  }

  // Tensors, in llama.cpp's converter order.
  const report: GgufReport = { tensors: [], bytes: 0 };
  const tensors: GgufTensorOut[] = [];
  const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const vec = (name: string, a: Float32Array) => tensors.push({ name, ne: [a.length], type: 'f32', data: f32Bytes(a) });
  const mat = (name: string, m: Matrix, rows: number, cols: number, role: Omit<TensorRole, 'name' | 'cols' | 'nLayers'>) => {
    const ty = ggufTensorType(type, { name, cols, nLayers: c.nLayers, ...role });
    let data: Uint8Array;
    let rel = 0;
    if (isPacked(m) && m.type === ty) data = m.data; // already in the wanted encoding
    else {
      const x = dequantize(m);
      if (ty === 'f32') data = f32Bytes(x);
      else {
        const q = quantizeMatrix(ty, x, rows, cols);
        rel = quantError(x, q).rel;
        data = q.data;
      }
    }
    if (data.byteLength !== rows * rowBytes(ty, cols)) throw fileError(model.source, `tensor ${name}: ${data.byteLength} bytes for ${rows} x ${cols} ${ty}`);
    tensors.push({ name, ne: [cols, rows], type: ty, data });
    report.tensors.push({ name, type: ty, rel });
  };
  const { dim, hiddenDim, vocabSize, nHeads, nKvHeads, headDim } = c;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  mat('token_embd.weight', w.tokEmb, vocabSize, dim, { classifier: c.tiedEmbeddings });
  w.layers.forEach((l, i) => {
    const p = `blk.${i}.`;
    vec(`${p}attn_norm.weight`, l.attnNorm);
    mat(`${p}attn_q.weight`, l.wq, qDim, dim, { classifier: false, layer: i });
    mat(`${p}attn_k.weight`, l.wk, kvDim, dim, { classifier: false, layer: i });
    mat(`${p}attn_v.weight`, l.wv, kvDim, dim, { classifier: false, layer: i });
    mat(`${p}attn_output.weight`, l.wo, dim, qDim, { classifier: false, layer: i });
    vec(`${p}ffn_norm.weight`, l.ffnNorm);
    mat(`${p}ffn_gate.weight`, l.w1, hiddenDim, dim, { classifier: false, layer: i });
    mat(`${p}ffn_down.weight`, l.w2, dim, hiddenDim, { classifier: false, layer: i });
    mat(`${p}ffn_up.weight`, l.w3, hiddenDim, dim, { classifier: false, layer: i });
  });
  vec('output_norm.weight', w.finalNorm);
  if (!c.tiedEmbeddings) mat('output.weight', w.wcls, vocabSize, dim, { classifier: true });

  const { header, dataBytes } = ggufBytes(kvs, tensors);
  report.bytes = header.byteLength + dataBytes;
  try {
    const fh = await open(outPath, 'w');
    try {
      await fh.write(header);
      const zeros = new Uint8Array(ALIGN);
      for (const t of tensors) {
        await fh.write(t.data);
        const pad = (ALIGN - (t.data.byteLength % ALIGN)) % ALIGN;
        if (pad) await fh.write(zeros.subarray(0, pad));
      }
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw fileError(outPath, `cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return report;
}
