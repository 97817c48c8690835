/**
 * GGUF (v2/v3) models: a bounds-checked header parser (every count and length is checked
 * against the bytes left before anything is allocated), Llama-family metadata, the
 * sentencepiece vocabulary (tokenizer.ggml.*, turned into a tokenizer.json) and the tensors.
 *
 * Tensor types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. Weight matrices keep
 * their file encoding (a PackedMatrix; F32 matrices stay float32); 1-D norms and biases are
 * widened to float32. A tensor's byte size is its block count times the block size; rows must
 * hold whole blocks, the blocks must lie inside the file and their scales must be finite.
 *
 * GGUF lists dims innermost first: a matrix [out, in] has ne = [in, out], which is already the
 * row-major [out, in] layout of ModelWeights. llama.cpp's converter stores llama-arch wq/wk in
 * the adjacent-pair RoPE order (no permutation needed); qwen2-arch models keep Hugging Face's
 * rotate_half order and are un-permuted here (whole rows move, so packed matrices too).
 */
import type { LayerWeights, LoadedModel, Matrix, ModelConfig, ModelWeights, PackedMatrix } from './types.ts';
import { BinaryFile, LIMITS, checkFinite, checkInt, fileError, modelName, need, validateConfig } from './util.ts';
import { PieceType, spmTokenizer } from './tokenizer.ts';
import { unpermuteMatrix, unpermuteRows } from './permute.ts';
import { type BlockFormat, dequantize, firstNonFinite, formatOfGgml, packedMatrix } from './quant.ts';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** Dims innermost first (ne[0] is the contiguous one). */
  dims: number[];
  /** ggml type id. */
  type: number;
  /** Absolute byte offset in the file. */
  offset: number;
  /** Number of elements. */
  count: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  /** Element type of each array-valued metadata key. */
  arrayTypes: Map<string, number>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  dataOffset: number;
}

/** ggml's names of the types kloop does not read (for messages). */
const GGML_TYPE_NAMES: Record<number, string> = {
  9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S',
  20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M',
  34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};
/** The type names kloop reads, for messages. */
export const READABLE_TYPES = 'F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K';

/** ggml's name of type id `t` ("type 99" when unknown). */
export function ggmlTypeName(t: number): string {
  return formatOfGgml(t)?.name ?? GGML_TYPE_NAMES[t] ?? `type ${t}`;
}

/** A bounds-checked little-endian cursor over the header bytes. */
class Cursor {
  private readonly dv: DataView;
  private readonly dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly path: string,
    /** Bytes of the whole file (the buffer may hold only its start). */
    private readonly fileSize: number,
  ) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  /** The u32 at the cursor, without moving it (undefined past the buffer). */
  peekU32(): number | undefined {
    return this.pos + 4 <= this.buf.length ? this.dv.getUint32(this.pos, true) : undefined;
  }
  get left(): number {
    return this.buf.length - this.pos;
  }
  need(n: number, what: string): void {
    if (!(n >= 0 && this.pos + n <= this.buf.length)) {
      if (this.buf.length < this.fileSize) throw new HeaderBeyondBuffer();
      throw fileError(this.path, `truncated GGUF header while reading ${what} (at byte ${this.pos}, file has ${this.fileSize})`);
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.dv.getUint8(this.pos++);
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(what: string): number {
    this.need(8, what);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    need(v <= BigInt(Number.MAX_SAFE_INTEGER), this.path, `absurd ${what} ${v} in GGUF header`);
    return Number(v);
  }
  value(type: number, what: string, depth = 0): GgufValue {
    const dv = this.dv;
    const at = (n: number) => {
      this.need(n, what);
      const p = this.pos;
      this.pos += n;
      return p;
    };
    switch (type) {
      case 0: return dv.getUint8(at(1));
      case 1: return dv.getInt8(at(1));
      case 2: return dv.getUint16(at(2), true);
      case 3: return dv.getInt16(at(2), true);
      case 4: return dv.getUint32(at(4), true);
      case 5: return dv.getInt32(at(4), true);
      case 6: return shortestF32(dv.getFloat32(at(4), true));
      case 7: return dv.getUint8(at(1)) !== 0;
      case 8: return this.string(what);
      case 9: {
        need(depth < 2, this.path, `nested GGUF arrays too deep in ${what}`);
        const et = this.u32(`${what} element type`);
        const n = this.u64(`${what} length`);
        const min = ELEM_MIN_BYTES[et];
        need(min !== undefined, this.path, `unknown GGUF value type ${et} in ${what}`);
        this.need(n * min, `${what} (${n} elements)`);
        const out: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(et, what, depth + 1);
        return out;
      }
      case 10: return dv.getBigUint64(at(8), true);
      case 11: return dv.getBigInt64(at(8), true);
      case 12: return dv.getFloat64(at(8), true);
      default:
        throw fileError(this.path, `unknown GGUF value type ${type} in ${what}`);
    }
  }
  string(what: string): string {
    const n = this.u64(`${what} length`);
    this.need(n, what);
    const bytes = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return this.dec.decode(bytes);
    } catch {
      throw fileError(this.path, `${what} is not valid UTF-8`);
    }
  }
}

/** The shortest decimal that rounds to the same float32 (1e-5, not 0.0000099999997...). */
function shortestF32(v: number): number {
  if (!Number.isFinite(v)) return v;
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

const ELEM_MIN_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8 };

class HeaderBeyondBuffer extends Error {}

/** Parse the GGUF header of `buf` (the start of the file, `fileSize` bytes in all). */
export function parseGgufHeader(path: string, buf: Uint8Array, fileSize: number): GgufHeader {
  const c = new Cursor(buf, path, fileSize);
  need(fileSize >= 24, path, `truncated GGUF file (${fileSize} bytes)`);
  const magic = c.u32('magic');
  need(magic === 0x46554747, path, 'bad magic (not a GGUF file)');
  const version = c.u32('version');
  need(version === 2 || version === 3, path, `unsupported GGUF version ${version} (2 or 3 expected)`);
  const nTensors = c.u64('tensor count');
  const nKv = c.u64('metadata count');
  need(nKv <= (fileSize - c.pos) / 12, path, `absurd metadata count ${nKv} for the file size (${fileSize} bytes): corrupt or truncated`);
  need(nTensors <= (fileSize - c.pos) / 24, path, `absurd tensor count ${nTensors} for the file size (${fileSize} bytes): corrupt or truncated`);
  const metadata = new Map<string, GgufValue>();
  const arrayTypes = new Map<string, number>();
  for (let i = 0; i < nKv; i++) {
    const key = c.string(`metadata key ${i}`);
    const type = c.u32(`type of ${key}`);
    const elemType = type === 9 ? c.peekU32() : undefined;
    metadata.set(key, c.value(type, key));
    if (elemType !== undefined) arrayTypes.set(key, elemType);
  }
  const alignRaw = metadata.get('general.alignment') ?? 32;
  const alignment = typeof alignRaw === 'bigint' ? Number(alignRaw) : alignRaw;
  need(
    typeof alignment === 'number' && Number.isInteger(alignment) && alignment > 0 && alignment <= 1 << 16 && (alignment & (alignment - 1)) === 0,
    path,
    `bad general.alignment ${String(alignRaw)}`,
  );
  const infos: { name: string; dims: number[]; type: number; rel: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.string(`tensor ${i} name`);
    const nd = c.u32(`dims of ${name}`);
    need(nd >= 1 && nd <= 4, path, `tensor ${name} has ${nd} dims (1..4 expected)`);
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(c.u64(`dim ${d} of ${name}`));
    const type = c.u32(`type of ${name}`);
    const rel = c.u64(`offset of ${name}`);
    infos.push({ name, dims, type, rel });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of infos) {
    let count = 1;
    for (const d of t.dims) {
      need(d >= 1 && d <= 1 << 30, path, `tensor ${t.name} has bad dims [${t.dims.join(', ')}]`);
      count *= d;
      need(count <= 8 * fileSize, path, `tensor ${t.name} dims [${t.dims.join(", ")}] exceed the file size`);
    }
    need(!tensors.has(t.name), path, `duplicate tensor ${t.name}`);
    const offset = dataOffset + t.rel;
    // The byte size of a known type comes from its block count; rows must hold whole blocks.
    // Tensors of other types are refused when (and only when) the model uses them.
    const ty = formatOfGgml(t.type);
    need(
      !ty || t.dims[0]! % ty.blockElems === 0,
      path,
      `tensor ${t.name} has rows of ${t.dims[0]} values, not a multiple of the ${ty?.name} block (${ty?.blockElems} values): corrupt`,
    );
    const bytes = ty ? (count / ty.blockElems) * ty.blockBytes : 0;
    need(offset + bytes <= fileSize, path, `tensor ${t.name} data (bytes ${offset}..${offset + bytes}) lies beyond the end of the file (${fileSize} bytes): truncated or corrupt`);
    tensors.set(t.name, { name: t.name, dims: t.dims, type: t.type, offset, count });
  }
  return { version, metadata, arrayTypes, tensors, alignment, dataOffset };
}

/** Read and parse the header of a GGUF file. */
export async function readGgufHeader(f: BinaryFile): Promise<GgufHeader> {
  for (const cap of [1 << 24, 1 << 28, 1 << 30]) {
    const n = Math.min(f.size, cap);
    const buf = await f.bytes(0, n, 'GGUF header');
    try {
      return parseGgufHeader(f.path, buf, f.size);
    } catch (e) {
      if (!(e instanceof HeaderBeyondBuffer)) throw e;
    }
  }
  throw fileError(f.path, 'GGUF header larger than 1 GiB');
}

/** Architectures whose tensors follow the llama layout; qwen2 keeps rotate_half q/k rows. */
const ARCHS: Record<string, { rotateHalf: boolean }> = {
  llama: { rotateHalf: false },
  qwen2: { rotateHalf: true },
};

/**
 * Load a GGUF model (llama / qwen2 architecture) from a path, or from
 * a BinaryFile (BinaryFile.fromBytes for bytes in memory).
 */
export async function loadGguf(file: string | BinaryFile): Promise<LoadedModel> {
  const f = typeof file === 'string' ? await BinaryFile.open(file) : file;
  const path = f.path;
  try {
    const h = await readGgufHeader(f);
    const md = h.metadata;
    const str = (k: string): string | undefined => {
      const v = md.get(k);
      if (v === undefined) return undefined;
      need(typeof v === 'string', path, `metadata ${k} is not a string`);
      return v;
    };
    const num = (k: string): number | undefined => {
      const v = md.get(k);
      if (v === undefined) return undefined;
      const n = typeof v === 'bigint' ? Number(v) : v;
      need(typeof n === 'number' && Number.isFinite(n), path, `metadata ${k} is not a number`);
      return n;
    };
    const req = (k: string): number => {
      const v = num(k);
      need(v !== undefined, path, `missing metadata ${k}`);
      return v;
    };
    const arch = str('general.architecture');
    need(arch !== undefined, path, 'missing metadata general.architecture');
    const archInfo = Object.hasOwn(ARCHS, arch) ? ARCHS[arch] : undefined;
    need(archInfo, path, `unsupported general.architecture "${arch}" (llama or qwen2 expected)`);
    const ropeScaling = str(`${arch}.rope.scaling.type`);
    need(ropeScaling === undefined || ropeScaling === 'none', path, `unsupported ${arch}.rope.scaling.type "${ropeScaling}"`);

    const dim = checkInt(path, `${arch}.embedding_length`, req(`${arch}.embedding_length`), 1, LIMITS.dim);
    const nHeads = checkInt(path, `${arch}.attention.head_count`, req(`${arch}.attention.head_count`), 1, LIMITS.nHeads);
    const headDim = num(`${arch}.attention.key_length`) ?? dim / nHeads;
    checkInt(path, 'head size (embedding_length / head_count)', headDim, 1, LIMITS.headDim);
    const vlen = num(`${arch}.attention.value_length`);
    need(vlen === undefined || vlen === headDim, path, `${arch}.attention.value_length ${vlen} differs from the key length ${headDim}`);
    const ropeDims = num(`${arch}.rope.dimension_count`);
    need(ropeDims === undefined || ropeDims === headDim, path, `partial RoPE (${arch}.rope.dimension_count ${ropeDims} < head size ${headDim}) is not supported`);
    const emb = h.tensors.get('token_embd.weight');
    need(emb, path, 'missing tensor token_embd.weight');
    const tokens = md.get('tokenizer.ggml.tokens');
    const vocabSize = num(`${arch}.vocab_size`) ?? (Array.isArray(tokens) ? tokens.length : emb.dims[1]!);
    const config: ModelConfig = {
      dim,
      hiddenDim: req(`${arch}.feed_forward_length`),
      nLayers: req(`${arch}.block_count`),
      nHeads,
      nKvHeads: num(`${arch}.attention.head_count_kv`) ?? nHeads,
      headDim,
      vocabSize,
      seqLen: req(`${arch}.context_length`),
      normEps: num(`${arch}.attention.layer_norm_rms_epsilon`) ?? 1e-5,
      ropeTheta: num(`${arch}.rope.freq_base`) ?? 10000,
      attentionBias: h.tensors.has('blk.0.attn_q.bias'),
      tiedEmbeddings: !h.tensors.has('output.weight'),
      bosId: num('tokenizer.ggml.bos_token_id') ?? 1,
      eosId: num('tokenizer.ggml.eos_token_id') ?? 2,
    };
    validateConfig(path, config);

    const tokenizer = ggufTokenizer(path, md, h.arrayTypes, config);

    const { nLayers, hiddenDim, nKvHeads } = config;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    const info = (name: string, shape: number[]): { t: GgufTensorInfo; fmt: BlockFormat } => {
      const t = h.tensors.get(name);
      need(t, path, `missing tensor ${name}`);
      const fmt = formatOfGgml(t.type);
      need(fmt, path, `tensor ${name} has unsupported type ${ggmlTypeName(t.type)} (kloop reads ${READABLE_TYPES})`);
      const dims = t.dims.slice();
      while (dims.length > shape.length && dims[dims.length - 1] === 1) dims.pop();
      need(
        dims.length === shape.length && dims.every((d, i) => d === shape[i]),
        path,
        `tensor ${name} has shape [${t.dims.join(', ')}], the config implies [${shape.join(', ')}]`,
      );
      return { t, fmt };
    };
    /** The bytes of a non-f32 tensor as a PackedMatrix [rows, cols], its scales (or values) checked finite. */
    const packed = async (t: GgufTensorInfo, fmt: BlockFormat, rows: number, cols: number): Promise<PackedMatrix> => {
      const type = fmt.type as PackedMatrix['type'];
      const bytes = await f.bytes(t.offset, (t.count / fmt.blockElems) * fmt.blockBytes, `tensor ${t.name}`);
      const bad = firstNonFinite(type, bytes);
      if (bad >= 0) {
        const what = fmt.blockElems === 1 ? `value ${bad} is` : `block ${bad} has a scale that is`;
        throw fileError(path, `tensor ${t.name} (${fmt.name}): ${what} NaN or infinite: corrupt`);
      }
      return packedMatrix(type, rows, cols, bytes);
    };
    /** A 1-D tensor (norm, bias), widened to float32 whatever its type. */
    const vec = async (name: string, n: number): Promise<Float32Array> => {
      const { t, fmt } = info(name, [n]);
      if (fmt.type === 'f32') return f.tensor(t.offset, t.count, 'F32', name);
      const out = dequantize(await packed(t, fmt, 1, n));
      checkFinite(out, path, name);
      return out;
    };
    /** A matrix [rows, cols] (ne = [cols, rows]): float32 for F32, else the file's encoding. */
    const mat = async (name: string, rows: number, cols: number): Promise<Matrix> => {
      const { t, fmt } = info(name, [cols, rows]);
      if (fmt.type === 'f32') return f.tensor(t.offset, t.count, 'F32', name);
      return packed(t, fmt, rows, cols);
    };
    // Tensors of layers past block_count mean the count or the tensor table is corrupt.
    for (const name of h.tensors.keys()) {
      const m = /^blk\.(\d+)\./.exec(name);
      need(!m || Number(m[1]) < nLayers, path, `tensor ${name} belongs to layer ${m?.[1]} but ${arch}.block_count is ${nLayers}`);
    }
    const tokEmb = await mat('token_embd.weight', vocabSize, dim);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < nLayers; l++) {
      const p = `blk.${l}.`;
      const lw: LayerWeights = {
        attnNorm: await vec(`${p}attn_norm.weight`, dim),
        wq: await mat(`${p}attn_q.weight`, qDim, dim),
        wk: await mat(`${p}attn_k.weight`, kvDim, dim),
        wv: await mat(`${p}attn_v.weight`, kvDim, dim),
        wo: await mat(`${p}attn_output.weight`, dim, qDim),
        ffnNorm: await vec(`${p}ffn_norm.weight`, dim),
        w1: await mat(`${p}ffn_gate.weight`, hiddenDim, dim),
        w2: await mat(`${p}ffn_down.weight`, dim, hiddenDim),
        w3: await mat(`${p}ffn_up.weight`, hiddenDim, dim),
      };
      if (config.attentionBias) {
        lw.bq = await vec(`${p}attn_q.bias`, qDim);
        lw.bk = await vec(`${p}attn_k.bias`, kvDim);
        lw.bv = await vec(`${p}attn_v.bias`, kvDim);
      }
      if (archInfo.rotateHalf) {
        lw.wq = unpermuteMatrix(lw.wq, nHeads, headDim, dim);
        lw.wk = unpermuteMatrix(lw.wk, nKvHeads, headDim, dim);
        if (lw.bq) lw.bq = unpermuteRows(lw.bq, nHeads, headDim, 1);
        if (lw.bk) lw.bk = unpermuteRows(lw.bk, nKvHeads, headDim, 1);
      }
      layers.push(lw);
    }
    const finalNorm = await vec('output_norm.weight', dim);
    const wcls = config.tiedEmbeddings ? tokEmb : await mat('output.weight', vocabSize, dim);
    const weights: ModelWeights = { tokEmb, layers, finalNorm, wcls };
    return { name: modelName(path), source: path, format: 'gguf', config, weights, tokenizer };
  } finally {
    await f.close();
  }
}

function ggufTokenizer(path: string, md: Map<string, GgufValue>, arrayTypes: Map<string, number>, config: ModelConfig) {
  const model = md.get('tokenizer.ggml.model');
  need(model !== undefined, path, 'missing metadata tokenizer.ggml.model (no tokenizer in the file)');
  need(model === 'llama', path, `unsupported tokenizer.ggml.model "${String(model)}" (only the sentencepiece "llama" tokenizer is supported)`);
  const tokens = md.get('tokenizer.ggml.tokens');
  need(Array.isArray(tokens) && tokens.every((t) => typeof t === 'string'), path, 'missing or bad tokenizer.ggml.tokens');
  const n = tokens.length;
  need(n >= 1 && n <= config.vocabSize, path, `tokenizer.ggml.tokens has ${n} tokens, the model ${config.vocabSize}`);
  const scoresRaw = md.get('tokenizer.ggml.scores');
  const typesRaw = md.get('tokenizer.ggml.token_type');
  // The scores are floats and the token types integers; other element types mean a corrupt header.
  const scoresType = arrayTypes.get('tokenizer.ggml.scores');
  const typesType = arrayTypes.get('tokenizer.ggml.token_type');
  need(scoresType === undefined || scoresType === 6 || scoresType === 12, path, `tokenizer.ggml.scores has element type ${scoresType} (float32 expected)`);
  need(typesType === undefined || [0, 1, 2, 3, 4, 5, 10, 11].includes(typesType), path, `tokenizer.ggml.token_type has element type ${typesType} (int32 expected)`);
  need(Array.isArray(scoresRaw) && scoresRaw.length === n && scoresRaw.every((s) => typeof s === 'number' && Number.isFinite(s)), path, 'missing or bad tokenizer.ggml.scores');
  need(Array.isArray(typesRaw) && typesRaw.length === n && typesRaw.every((t) => typeof t === 'number'), path, 'missing or bad tokenizer.ggml.token_type');
  const id = (k: string, dflt: number | null): number | null => {
    const v = md.get(k);
    if (v === undefined) return dflt;
    const x = typeof v === 'bigint' ? Number(v) : v;
    need(typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < n, path, `bad ${k} ${String(v)}`);
    return x;
  };
  const unkId = id('tokenizer.ggml.unknown_token_id', typesRaw.indexOf(PieceType.Unknown) >= 0 ? typesRaw.indexOf(PieceType.Unknown) : null);
  const addBos = md.get('tokenizer.ggml.add_bos_token');
  return spmTokenizer(
    {
      pieces: tokens as string[],
      scores: scoresRaw as number[],
      types: typesRaw as number[],
      bosId: id('tokenizer.ggml.bos_token_id', 1),
      eosId: id('tokenizer.ggml.eos_token_id', 2),
      unkId,
      addBos: typeof addBos === 'boolean' ? addBos : true,
    },
    path,
  );
}
