/**
 * Corrupted variants of the real model and tokenizer files, generated deterministically from a
 * seed. Each variant says which file it corrupts, how, and whether loading it must fail
 * ('error') or may legitimately succeed ('any': the mutation can leave a well-formed file, e.g.
 * a changed score or a truncation at a token boundary). NaN/Inf weights are always 'error'.
 */
import {
  GGML_BLOCKS, INVALID_UTF8, NON_FINITE_BITS, Rng, concat, copy, getF32, getI32, getU32, ggmlBytes, ggufLayout, joinSafetensors,
  llama2cLayout, llama2cTokRecords, setF32Bits, setI32, setU32, setU64, splitSafetensors, utf8,
  type GgufLayout, type GgufString,
} from './formats.ts';

export type Expect = 'error' | 'any';

export interface Mutation {
  /** New bytes of the mutated file, or null to delete it. */
  bytes: Uint8Array | null;
  desc: string;
  expect: Expect;
}

export interface Mutator {
  kind: string;
  make(r: Rng): Mutation;
}

export interface Target {
  /** Short name, e.g. "stories260K.bin". */
  name: string;
  /** Variants to generate. */
  count: number;
  /** Files of an unmodified variant folder (name -> bytes). */
  base: Record<string, Uint8Array>;
  /** The file of `base` the mutations change. */
  mutated: string;
  /** How the variant is loaded: loadModel on `entry` (relative; '' = the folder), or the llama2.c tokenizer loader alone. */
  call: 'loadModel' | 'tokenizer';
  entry: string;
  /** loadModel's tokenizer option (relative), if any. */
  tokenizer?: string;
  mutators: Mutator[];
}

export interface Variant {
  index: number;
  target: Target;
  kind: string;
  desc: string;
  files: Record<string, Uint8Array | null>;
  expect: Expect;
}

/** Generates `target.count` variants per target, cycling through its mutators. */
export function* variants(targets: Target[], seed: number): Generator<Variant> {
  const r = new Rng(seed);
  let index = 0;
  for (const target of targets) {
    for (let i = 0; i < target.count; i++) {
      const m = target.mutators[i % target.mutators.length]!;
      const mut = m.make(r);
      yield { index: index++, target, kind: m.kind, desc: mut.desc, files: { ...target.base, [target.mutated]: mut.bytes }, expect: mut.expect };
    }
  }
}

const HEADER_NAMES = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
const isI32 = (v: number) => Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31;

function nonFinite(r: Rng, b: Uint8Array, pos: number, what: string): Mutation {
  const bits = r.pick(NON_FINITE_BITS);
  return { bytes: setF32Bits(copy(b), pos, bits), desc: `${what}: float at byte ${pos} set to 0x${bits.toString(16)}`, expect: 'error' };
}

function validUtf8(b: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Put an invalid UTF-8 sequence inside the `len` bytes at `at` (a lone lead byte goes last). */
function breakUtf8(r: Rng, b: Uint8Array, at: number, len: number, what: string): Mutation {
  const fits = INVALID_UTF8.filter((s) => s.length <= len);
  let seq = r.pick(fits);
  let out = copy(b);
  let pos = seq.length === 1 && seq[0] === 0xc3 ? at + len - 1 : at + r.int(len - seq.length + 1);
  out.set(seq, pos);
  // A continuation byte written over another continuation byte can leave valid UTF-8: use 0xFF then.
  if (validUtf8(out.subarray(at, at + len))) {
    out = copy(b);
    pos = at;
    seq = [0xff];
    out[pos] = 0xff;
  }
  return { bytes: out, desc: `${what}: bytes ${seq.map((x) => x.toString(16)).join(' ')} at ${pos}`, expect: 'error' };
}

// ---------------------------------------------------------------- llama2.c checkpoint

export function llama2cModelMutators(b: Uint8Array): Mutator[] {
  const L = llama2cLayout(b);
  const nWeights = (L.weightsEnd - 28) / 4;
  return [
    { kind: 'truncate', make: (r) => { const n = r.int(b.length); return { bytes: b.slice(0, n), desc: `truncated to ${n} bytes`, expect: 'error' }; } },
    {
      kind: 'append',
      make: (r) => { const n = r.pick([1, 3, 4, 28, r.range(1, 4096)]); return { bytes: concat(b, r.bytes(n)), desc: `${n} bytes appended`, expect: 'error' }; },
    },
    {
      kind: 'header-field',
      make: (r) => {
        const i = r.int(7);
        const o = L.header[i]!;
        const cands = [0, -1, 1, 2, 0x7fffffff, -0x80000000, r.i32(), o + 1, o - 1, o * 2, -o, 1 << 16, 1 << 24, o * 1000, r.range(1, 1024)]
          .filter((v) => isI32(v) && v !== o);
        const v = r.pick(cands);
        return { bytes: setI32(copy(b), 4 * i, v), desc: `header ${HEADER_NAMES[i]} ${o} -> ${v}`, expect: 'error' };
      },
    },
    {
      kind: 'dims-overflow',
      make: (r) => {
        // Values at the loader's limits or far beyond them, so size products overflow 2^32 / 2^53.
        const limit = [1 << 16, 1 << 18, 1 << 10, 1 << 10, 1 << 10, 1 << 22, 1 << 24];
        const out = copy(b);
        const set: string[] = [];
        const n = r.range(2, 7);
        for (let k = 0; k < n; k++) {
          const i = r.int(7);
          let v = r.pick([limit[i]!, limit[i]! + 1, 0x40000000, 0x7fffffff, 0x10001, 46341]);
          if (i === 5 && r.int(2) === 0) v = -v;
          setI32(out, 4 * i, v);
          set.push(`${HEADER_NAMES[i]}=${v}`);
        }
        return { bytes: out, desc: `header ${set.join(' ')}`, expect: 'error' };
      },
    },
    { kind: 'nan-weight', make: (r) => nonFinite(r, b, 28 + 4 * r.int(nWeights), 'weights') },
    {
      kind: 'byte-flip',
      make: (r) => {
        const pos = r.range(28, L.weightsEnd - 1);
        const mask = r.range(1, 255);
        const out = copy(b);
        out[pos] ^= mask;
        const f = getF32(out, pos & ~3);
        return { bytes: out, desc: `weight byte ${pos} xor 0x${mask.toString(16)}`, expect: Number.isFinite(f) ? 'any' : 'error' };
      },
    },
    { kind: 'magic', make: () => ({ bytes: setU32(copy(b), 0, 0x616b3432), desc: 'ak42 magic (export v1+)', expect: 'error' }) },
    {
      kind: 'random-header',
      make: (r) => { const out = copy(b); out.set(r.bytes(28), 0); return { bytes: out, desc: 'random 28-byte header', expect: 'error' }; },
    },
  ];
}

// ---------------------------------------------------------------- llama2.c tokenizer

/** `count`: tokens the loader reads (the model's vocab size), or undefined when it reads the whole file. */
export function llama2cTokMutators(b: Uint8Array, count?: number): Mutator[] {
  const { records } = llama2cTokRecords(b);
  const nRead = count ?? records.length;
  const read = records.slice(0, nRead);
  const readEnd = read[read.length - 1]!.end;
  const maxPiece = Math.max(...read.map((x) => x.len));
  const maxLen = getI32(b, 0);
  const boundaries = new Set(records.slice(2).map((x) => x.end)); // >= 3 tokens left
  const rec = (r: Rng) => read[r.int(read.length)]!;
  const byLen = new Map<number, number[]>();
  read.forEach((x, i) => { if (i >= 3) byLen.set(x.len, [...(byLen.get(x.len) ?? []), i]); });
  const dupLens = [...byLen.entries()].filter(([, ids]) => ids.length >= 2);
  return [
    {
      kind: 'truncate',
      make: (r) => {
        const n = r.int(count === undefined ? b.length : readEnd);
        return { bytes: b.slice(0, n), desc: `truncated to ${n} bytes`, expect: count === undefined && boundaries.has(n) ? 'any' : 'error' };
      },
    },
    {
      kind: 'max-token-length',
      make: (r) => {
        const v = r.pick([0, -1, 1, maxPiece - 1, 4097, 0x7fffffff, -0x80000000, r.i32(), maxPiece, 4096].filter((x) => x !== maxLen));
        return { bytes: setI32(copy(b), 0, v), desc: `max_token_length ${maxLen} -> ${v}`, expect: v > 0 && v <= 4096 && v >= maxPiece ? 'any' : 'error' };
      },
    },
    {
      kind: 'token-length',
      make: (r) => {
        const t = rec(r);
        const v = r.pick([0, -1, -0x80000000, 0x7fffffff, maxLen + 1, t.len + 1, t.len - 1, r.i32(), b.length, 4096 * 4096]);
        return { bytes: setI32(copy(b), t.lenPos, v), desc: `length of the token at ${t.scorePos}: ${t.len} -> ${v}`, expect: v <= 0 || v > maxLen ? 'error' : 'any' };
      },
    },
    { kind: 'nan-score', make: (r) => nonFinite(r, b, rec(r).scorePos, 'token score') },
    {
      kind: 'score',
      make: (r) => {
        const t = rec(r);
        const out = copy(b);
        new DataView(out.buffer).setFloat32(t.scorePos, (r.float() - 0.5) * 2000, true);
        return { bytes: out, desc: `score of the token at ${t.scorePos} changed`, expect: 'any' };
      },
    },
    { kind: 'invalid-utf8', make: (r) => { const t = rec(r); return breakUtf8(r, b, t.bytesPos, t.len, `piece at ${t.scorePos}`); } },
    {
      kind: 'duplicate-piece',
      make: (r) => {
        const [, ids] = r.pick(dupLens);
        const a = read[ids![r.int(ids!.length)]!]!;
        let c = read[ids![r.int(ids!.length)]!]!;
        if (c === a) c = read[ids!.find((i) => read[i] !== a)!]!;
        const out = copy(b);
        out.set(b.subarray(a.bytesPos, a.end), c.bytesPos);
        return { bytes: out, desc: `piece at ${c.scorePos} made a copy of the piece at ${a.scorePos}`, expect: 'error' };
      },
    },
    ...(count === undefined || readEnd !== b.length ? [] : [{
      // A model of `count` tokens takes a file of exactly `count` (more is another model's tokenizer).
      kind: 'trailing-bytes',
      make: (r: Rng) => {
        const extra = r.pick([1, 4, 8, r.range(1, 4096)]);
        return { bytes: concat(b, r.bytes(extra)), desc: `${extra} bytes appended`, expect: 'error' as const };
      },
    }]),
    {
      kind: 'byte-flip',
      make: (r) => {
        const pos = r.int(count === undefined ? b.length : readEnd);
        const out = copy(b);
        out[pos] ^= r.range(1, 255);
        return { bytes: out, desc: `byte ${pos} flipped`, expect: 'any' };
      },
    },
  ];
}

// ---------------------------------------------------------------- GGUF

const USED_GGUF = /^(token_embd|output_norm|output|blk\.\d+\.(attn_norm|attn_q|attn_k|attn_v|attn_output|ffn_norm|ffn_gate|ffn_down|ffn_up))\.weight$/;
const U64_HUGE = [2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];

export function ggufMutators(b: Uint8Array): Mutator[] {
  const L: GgufLayout = ggufLayout(b);
  const used = L.tensors.filter((t) => USED_GGUF.test(t.name));
  const scores = L.kvs.find((k) => k.key === 'tokenizer.ggml.scores')!;
  const arrays = L.kvs.filter((k) => k.type === 9);
  const scalars = L.kvs.filter((k) => k.type !== 8 && k.type !== 9);
  const strings = (r: Rng): GgufString => {
    const group = r.int(4);
    const pool =
      group === 0 ? L.kvs.map((k) => k.keyStr)
      : group === 1 ? L.tensors.map((t) => t.nameStr)
      : L.strings.filter((s) => s.what.startsWith('tokenizer.ggml.tokens') || s.what.startsWith('value of'));
    return r.pick(pool);
  };
  const count = (what: string, pos: number, n: number): Mutator => ({
    kind: `${what}-count`,
    make: (r) => {
      const v = r.pick([0n, BigInt(n - 1), BigInt(n + 1), BigInt(2 * n), ...U64_HUGE, r.u64(), BigInt(r.u32())]);
      return { bytes: setU64(copy(b), pos, v), desc: `${what} count ${n} -> ${v}`, expect: 'error' };
    },
  });
  return [
    {
      kind: 'truncate',
      make: (r) => { const n = r.int(b.length); return { bytes: b.slice(0, n), desc: `truncated to ${n} bytes`, expect: n < L.dataEnd ? 'error' : 'any' }; },
    },
    {
      kind: 'magic-version',
      make: (r) => {
        if (r.int(2) === 0) return { bytes: setU32(copy(b), 0, r.pick([0, 0x46554746, 0x47475546, r.u32()])), desc: 'bad magic', expect: 'error' };
        const v = r.pick([0, 1, 4, 0xffffffff, r.u32()]);
        return { bytes: setU32(copy(b), 4, v), desc: `version ${v}`, expect: 'error' };
      },
    },
    count('tensor', L.tensorCountPos, L.nTensors),
    count('metadata', L.kvCountPos, L.nKv),
    {
      kind: 'kv-type',
      make: (r) => {
        const kv = r.pick(L.kvs);
        const v = r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 99, 0xffffffff].filter((x) => x !== kv.type));
        return { bytes: setU32(copy(b), kv.typePos, v), desc: `type of ${kv.key} ${kv.type} -> ${v}`, expect: v > 12 ? 'error' : 'any' };
      },
    },
    {
      kind: 'string-length',
      make: (r) => {
        const s = strings(r);
        const past = BigInt(b.length - s.bytesPos + 1);
        const v = r.pick([past, past + 1000n, BigInt(b.length), ...U64_HUGE, r.u64(), BigInt(s.len + 1), BigInt(Math.max(0, s.len - 1)), 0n]);
        return { bytes: setU64(copy(b), s.lenPos, v), desc: `length of ${s.what} ${s.len} -> ${v}`, expect: v >= past ? 'error' : 'any' };
      },
    },
    {
      kind: 'array-length',
      make: (r) => {
        const kv = r.pick(arrays);
        const n = kv.arrayLen!;
        const v = r.pick([0n, BigInt(n - 1), BigInt(n + 1), BigInt(2 * n), ...U64_HUGE, r.u64()]);
        return { bytes: setU64(copy(b), kv.arrayLenPos!, v), desc: `length of ${kv.key} ${n} -> ${v}`, expect: v >= 2n ** 32n ? 'error' : 'any' };
      },
    },
    {
      kind: 'array-type',
      make: (r) => {
        const kv = r.pick(arrays);
        const v = r.pick([0, 1, 4, 5, 6, 8, 9, 10, 12, 13, 0xffffffff].filter((x) => x !== kv.arrayElemType));
        // i32 <-> u32 reads the same small token types.
        const same = kv.key === 'tokenizer.ggml.token_type' && v === 4;
        return { bytes: setU32(copy(b), kv.arrayTypePos!, v), desc: `element type of ${kv.key} ${kv.arrayElemType} -> ${v}`, expect: same ? 'any' : 'error' };
      },
    },
    {
      kind: 'tensor-ndims',
      make: (r) => {
        const t = r.pick(L.tensors);
        const v = r.pick([0, 5, 1, 2, 3, 4, 0xffffffff, r.u32()].filter((x) => x !== t.dims.length));
        return { bytes: setU32(copy(b), t.ndimsPos, v), desc: `dims of ${t.name} ${t.dims.length} -> ${v}`, expect: v >= 1 && v <= 4 ? 'any' : 'error' };
      },
    },
    {
      kind: 'tensor-dim',
      make: (r) => {
        const t = r.pick(L.tensors);
        const d = r.int(t.dims.length);
        const o = t.dims[d]!;
        const v = r.pick([0n, 2n ** 40n, ...U64_HUGE, BigInt(o + 1), BigInt(o * 2), BigInt(o - 1), r.u64(), BigInt(r.u32())].filter((x) => x !== BigInt(o)));
        return { bytes: setU64(copy(b), t.dimsPos[d]!, v), desc: `dim ${d} of ${t.name} ${o} -> ${v}`, expect: 'error' };
      },
    },
    {
      kind: 'tensor-type',
      make: (r) => {
        const t = r.pick(used);
        const v = r.pick([0, 1, 30, 2, 3, 6, 8, 12, 13, 14, 7, 24, 28, 99, 0xffffffff, r.u32()].filter((x) => x !== t.type));
        // Another type kloop reads may leave a readable file: its rows hold whole blocks and its
        // (new) bytes lie inside the file. Anything else must be refused.
        const blk = GGML_BLOCKS[v];
        const count = t.dims.reduce((a, d) => a * d, 1);
        const fits = !!blk && t.dims[0]! % blk[0] === 0 && t.start + ggmlBytes(v, count) <= b.length;
        return { bytes: setU32(copy(b), t.typePos, v), desc: `type of ${t.name} ${t.type} -> ${v}`, expect: fits ? 'any' : 'error' };
      },
    },
    {
      kind: 'tensor-offset',
      make: (r) => {
        const t = r.pick(used);
        const past = BigInt(b.length - L.dataOffset - (t.end - t.start) + 1);
        const v = r.pick([past, BigInt(b.length), ...U64_HUGE, r.u64(), BigInt(t.rel + 1), BigInt(t.rel + 4), BigInt(Math.max(0, t.rel - 32)), 0n]);
        return { bytes: setU64(copy(b), t.offsetPos, v), desc: `offset of ${t.name} ${t.rel} -> ${v}`, expect: v >= past ? 'error' : 'any' };
      },
    },
    {
      kind: 'metadata-value',
      make: (r) => {
        const kv = r.pick(scalars);
        const out = copy(b);
        let desc: string;
        let expect: Expect = 'any';
        if (kv.type === 6) {
          const bits = r.pick([...NON_FINITE_BITS, 0, 0xbf800000, 0x3f800000]);
          setF32Bits(out, kv.valuePos, bits);
          desc = `${kv.key} = f32 bits 0x${bits.toString(16)}`;
          if (!Number.isFinite(getF32(out, kv.valuePos))) expect = 'error';
        } else {
          const o = getU32(b, kv.valuePos);
          const v = r.pick([0, 1, 0xffffffff, 0x7fffffff, o + 1, o * 2, r.u32()].filter((x) => x !== o));
          setU32(out, kv.valuePos, v);
          desc = `${kv.key} ${o} -> ${v}`;
          if (/embedding_length|feed_forward_length|block_count|head_count$|head_count_kv/.test(kv.key)) expect = 'error';
        }
        return { bytes: out, desc, expect };
      },
    },
    {
      kind: 'nan-weight',
      make: (r) => {
        // Float tensors (F32, F16, BF16: the NaN / infinity bits make every 16-bit half non-finite too).
        const t = r.pick(used.filter((x) => GGML_BLOCKS[x.type]![0] === 1));
        return nonFinite(r, b, t.start + 4 * r.int((t.end - t.start) / 4), `tensor ${t.name}`);
      },
    },
    { kind: 'nan-score', make: (r) => nonFinite(r, b, scores.arrayLenPos! + 8 + 4 * r.int(scores.arrayLen!), 'tokenizer.ggml.scores') },
    {
      kind: 'invalid-utf8',
      make: (r) => {
        let s = strings(r);
        while (s.len === 0) s = strings(r);
        return breakUtf8(r, b, s.bytesPos, s.len, s.what);
      },
    },
  ];
}

/** Half-float bits that are not finite: +inf, -inf, NaNs. */
const NON_FINITE_F16 = [0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xffff] as const;
/** Byte offsets of the f16 scale fields (d, dmin / m) inside a block of each quantized type. */
const SCALE_FIELDS: Record<number, number[]> = { 2: [0], 3: [0, 2], 6: [0], 8: [0], 12: [0, 2], 13: [0, 2], 14: [208] };
/** ggml type ids kloop does not read (Q8_1, Q2_K, Q3_K, Q8_K, IQ*, I8.., TQ*, MXFP4, unassigned). */
const UNREAD_TYPES = [9, 10, 11, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 34, 35, 39, 40, 99, 0xffffffff];

/**
 * Mutations aimed at the block-quantized tensors of a GGUF file (llama.cpp's own quantized
 * files): a truncation inside a tensor's blocks, an unknown or unread type id, a NaN / infinite
 * block scale, and dims whose block count does not fit the file or whose rows are not whole
 * blocks. Each must be refused with a clear error.
 */
export function ggufQuantMutators(b: Uint8Array): Mutator[] {
  const L: GgufLayout = ggufLayout(b);
  const quant = L.tensors.filter((t) => USED_GGUF.test(t.name) && SCALE_FIELDS[t.type]);
  if (quant.length === 0) throw new Error('ggufQuantMutators: the file holds no quantized tensor');
  const used = L.tensors.filter((t) => USED_GGUF.test(t.name));
  return [
    {
      kind: 'truncate-blocks',
      make: (r) => {
        const t = r.pick(quant);
        const n = t.start + r.int(t.end - t.start);
        return { bytes: b.slice(0, n), desc: `truncated to ${n} bytes, inside the blocks of ${t.name} (${t.start}..${t.end})`, expect: 'error' };
      },
    },
    {
      kind: 'unread-type',
      make: (r) => {
        const t = r.pick(used);
        const v = r.pick(UNREAD_TYPES);
        return { bytes: setU32(copy(b), t.typePos, v), desc: `type of ${t.name} ${t.type} -> ${v}`, expect: 'error' };
      },
    },
    {
      kind: 'nan-scale',
      make: (r) => {
        const t = r.pick(quant);
        const [elems, bytes] = GGML_BLOCKS[t.type]!;
        const nBlocks = (t.end - t.start) / bytes;
        const blockNo = r.pick([0, nBlocks - 1, r.int(nBlocks)]);
        const field = r.pick(SCALE_FIELDS[t.type]!);
        const h = r.pick(NON_FINITE_F16);
        const out = copy(b);
        const at = t.start + blockNo * bytes + field;
        out[at] = h & 0xff;
        out[at + 1] = h >> 8;
        return { bytes: out, desc: `tensor ${t.name}: scale at byte ${field} of block ${blockNo} (of ${elems} values) set to 0x${h.toString(16)}`, expect: 'error' };
      },
    },
    {
      kind: 'block-count',
      make: (r) => {
        const t = r.pick(quant);
        const [elems] = GGML_BLOCKS[t.type]!;
        const d = r.int(2);
        const o = t.dims[d]!;
        // More rows than the file holds blocks for, or a row length that is not whole blocks.
        const v = d === 1 ? r.pick([o * 2, o * 1000, o + Math.ceil((b.length - t.start) / 2), 2 ** 30]) : r.pick([o + 1, o - 1, o + elems / 2, o * 2 + 1]);
        return { bytes: setU64(copy(b), t.dimsPos[d]!, BigInt(v)), desc: `dim ${d} of ${t.name} (${t.type}) ${o} -> ${v}`, expect: 'error' };
      },
    },
  ];
}

// ---------------------------------------------------------------- Hugging Face folder

const parses = (bytes: Uint8Array): boolean => {
  try {
    JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return true;
  } catch {
    return false;
  }
};

function truncateJson(r: Rng, b: Uint8Array): Mutation {
  const n = r.int(b.length);
  const bytes = b.slice(0, n);
  return { bytes, desc: `truncated to ${n} bytes`, expect: parses(bytes) ? 'any' : 'error' };
}

/** Insert an invalid UTF-8 sequence inside one of the JSON strings of `text`. */
function jsonUtf8(r: Rng, text: string): Mutation {
  const starts: number[] = [];
  for (let i = 0; i < text.length - 2; i++) if (text[i] === '"' && /[A-Za-z]/.test(text[i + 1]!)) starts.push(i + 1);
  const at = r.pick(starts);
  const pre = utf8(text.slice(0, at));
  const seq = r.pick(INVALID_UTF8.filter((s) => s[0] !== 0xc3));
  return { bytes: concat(pre, Uint8Array.from(seq), utf8(text.slice(at))), desc: `bytes ${seq.map((x) => x.toString(16)).join(' ')} inside a string at char ${at}`, expect: 'error' };
}

const NOT_OBJECT = ['[]', 'null', '"llama"', '42', '', ' ', 'true', '[{}]', '{', '\u0000', '['.repeat(20000)];

export function hfConfigMutators(b: Uint8Array): Mutator[] {
  const text = new TextDecoder().decode(b);
  const cfg = JSON.parse(text) as Record<string, unknown>;
  const shapeInts = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size'];
  const required = ['model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'vocab_size', 'max_position_embeddings'];
  const keys = Object.keys(cfg);
  const VALUES: unknown[] = [0, -1, 1, 2, 1e12, 2 ** 53, 2 ** 31, 1.5, '64', null, true, [], {}, -1e308, 1e308, 'llama', [64], 'NaN'];
  const json = (o: unknown) => utf8(JSON.stringify(o, null, 2));
  return [
    { kind: 'truncate', make: (r) => truncateJson(r, b) },
    {
      kind: 'field',
      make: (r) => {
        const key = r.pick(keys);
        let v: unknown = r.pick([...VALUES, r.range(0, 5000), r.i32()]);
        if (JSON.stringify(v) === JSON.stringify(cfg[key])) v = -7;
        const changedShape = shapeInts.includes(key);
        const bad = !(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1 << 24);
        const expect: Expect = changedShape || (key === 'max_position_embeddings' && bad) || key === 'model_type' ? 'error' : 'any';
        return { bytes: json({ ...cfg, [key]: v }), desc: `${key} = ${JSON.stringify(v)}`, expect };
      },
    },
    {
      kind: 'delete-key',
      make: (r) => {
        const key = r.pick(keys);
        const c = { ...cfg };
        delete c[key];
        return { bytes: json(c), desc: `${key} deleted`, expect: required.includes(key) ? 'error' : 'any' };
      },
    },
    { kind: 'not-object', make: (r) => { const t = r.pick(NOT_OBJECT); return { bytes: utf8(t), desc: `config is ${JSON.stringify(t.slice(0, 8))}`, expect: 'error' }; } },
    { kind: 'invalid-utf8', make: (r) => jsonUtf8(r, text) },
    {
      kind: 'non-finite-number',
      make: (r) => {
        const key = r.pick(['rms_norm_eps', 'rope_theta', 'hidden_size', 'vocab_size', 'max_position_embeddings']);
        const lit = r.pick(['NaN', 'Infinity', '-Infinity', '1e400', '-1e400']);
        const t = text.replace(new RegExp(`("${key}": )[^,\\n]+`), `$1${lit}`);
        return { bytes: utf8(t), desc: `${key}: ${lit}`, expect: 'error' };
      },
    },
    { kind: 'deleted', make: () => ({ bytes: null, desc: 'config.json removed', expect: 'error' }) },
  ];
}

export function hfTokenizerMutators(b: Uint8Array, modelVocab: number): Mutator[] {
  const text = new TextDecoder().decode(b);
  const tok = JSON.parse(text) as Record<string, unknown>;
  const model = tok.model as Record<string, unknown>;
  const vocab = model.vocab as Record<string, number>;
  const pieces = Object.keys(vocab);
  const json = (o: unknown) => utf8(JSON.stringify(o));
  const withModel = (m: Record<string, unknown>) => json({ ...tok, model: { ...model, ...m } });
  const STRUCT: [string, () => Uint8Array][] = [
    ['model.vocab = []', () => withModel({ vocab: [] })],
    ['model.vocab = null', () => withModel({ vocab: null })],
    ['model.vocab = 5', () => withModel({ vocab: 5 })],
    ['model.vocab = {}', () => withModel({ vocab: {}, merges: [] })],
    ['model.vocab id -1', () => withModel({ vocab: { ...vocab, [pieces[300]!]: -1 } })],
    ['model.vocab id 1.5', () => withModel({ vocab: { ...vocab, [pieces[300]!]: 1.5 } })],
    ['model.vocab id 2^24', () => withModel({ vocab: { ...vocab, [pieces[300]!]: 2 ** 24 } })],
    ['model.vocab id 2^40', () => withModel({ vocab: { ...vocab, [pieces[300]!]: 2 ** 40 } })],
    ['model.vocab id "x"', () => withModel({ vocab: { ...vocab, [pieces[300]!]: 'x' } })],
    ['model.vocab extra id past the model', () => withModel({ vocab: { ...vocab, zzzextra: modelVocab + 88 } })],
    ['model.vocab duplicate ids', () => withModel({ vocab: { ...vocab, [pieces[300]!]: 301 } })],
    ['model.type Unigram', () => withModel({ type: 'Unigram' })],
    ['model.type WordPiece', () => withModel({ type: 'WordPiece' })],
    ['model.type Nope', () => withModel({ type: 'Nope' })],
    ['model.type 5', () => withModel({ type: 5 })],
    ['model.merges "x"', () => withModel({ merges: 'x' })],
    ['model.merges [[1,2]]', () => withModel({ merges: [[1, 2]] })],
    ['model.merges ["a"]', () => withModel({ merges: ['a'] })],
    ['model.merges ["a b c"]', () => withModel({ merges: ['a b c', ['a', 'b', 'c']] })],
    ['model.merges unknown pieces', () => withModel({ merges: [['zz9', 'yy9']] })],
    ['model.unk_token unknown', () => withModel({ unk_token: 'not-in-vocab' })],
    ['model.unk_token 5', () => withModel({ unk_token: 5 })],
    ['model.byte_fallback "yes"', () => withModel({ byte_fallback: 'yes' })],
    ['model = null', () => json({ ...tok, model: null })],
    ['model = []', () => json({ ...tok, model: [] })],
    ['model deleted', () => { const t = { ...tok }; delete t.model; return json(t); }],
    ['added_tokens = {}', () => json({ ...tok, added_tokens: {} })],
    ['added_tokens [{id:-1}]', () => json({ ...tok, added_tokens: [{ id: -1, content: 'x', special: true }] })],
    ['added_tokens [{id:1e9}]', () => json({ ...tok, added_tokens: [{ id: 1e9, content: 'x', special: true }] })],
    ['added_tokens [null]', () => json({ ...tok, added_tokens: [null] })],
    ['added_tokens [{}]', () => json({ ...tok, added_tokens: [{}] })],
    ['decoder {type:Nope}', () => json({ ...tok, decoder: { type: 'Nope' } })],
    ['decoder 5', () => json({ ...tok, decoder: 5 })],
    ['decoder Sequence of 5', () => json({ ...tok, decoder: { type: 'Sequence', decoders: 5 } })],
    ['normalizer {type:Nope}', () => json({ ...tok, normalizer: { type: 'Nope' } })],
    ['normalizer bad regex', () => json({ ...tok, normalizer: { type: 'Replace', pattern: { Regex: '(' }, content: 'x' } })],
    ['pre_tokenizer bad regex', () => json({ ...tok, pre_tokenizer: { type: 'Split', pattern: { Regex: '[' }, behavior: 'Isolated', invert: false } })],
    ['pre_tokenizer {type:Nope}', () => json({ ...tok, pre_tokenizer: { type: 'Nope' } })],
    ['post_processor single 5', () => json({ ...tok, post_processor: { type: 'TemplateProcessing', single: 5 } })],
    ['post_processor unknown token', () => json({ ...tok, post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: 'nope', type_id: 0 } }], pair: [], special_tokens: {} } })],
  ];
  return [
    { kind: 'truncate', make: (r) => truncateJson(r, b) },
    { kind: 'invalid-utf8', make: (r) => jsonUtf8(r, text) },
    {
      kind: 'structure',
      make: (r) => {
        const [desc, f] = r.pick(STRUCT);
        const expect: Expect = /model = |model deleted|model.vocab = (null|5)|extra id past|id (-1|1\.5|2\^24|2\^40|"x")|post_processor single 5/.test(desc) ? 'error' : 'any';
        return { bytes: f(), desc, expect };
      },
    },
    {
      kind: 'vocab-id',
      make: (r) => {
        const p = r.pick(pieces);
        const v = r.pick([-5, -1, 0, 1, r.int(modelVocab), modelVocab, modelVocab + r.int(1 << 20), 2 ** 31, 0.5]);
        return { bytes: withModel({ vocab: { ...vocab, [p]: v } }), desc: `vocab[${JSON.stringify(p)}] = ${v}`, expect: Number.isInteger(v) && v >= 0 && v < modelVocab ? 'any' : 'error' };
      },
    },
    { kind: 'not-object', make: (r) => { const t = r.pick(NOT_OBJECT); return { bytes: utf8(t), desc: `tokenizer.json is ${JSON.stringify(t.slice(0, 8))}`, expect: 'error' }; } },
    { kind: 'deleted', make: () => ({ bytes: null, desc: 'tokenizer.json removed', expect: 'error' }) },
  ];
}

export function safetensorsMutators(b: Uint8Array): Mutator[] {
  const { header, headerBytes, data } = splitSafetensors(b);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const hlen = headerBytes.length;
  const withHeader = (h: unknown) => joinSafetensors(utf8(JSON.stringify(h)), data);
  const entry = (r: Rng) => {
    const name = r.pick(names);
    return { name, t: header[name] as { dtype: string; shape: number[]; data_offsets: [number, number] } };
  };
  return [
    { kind: 'truncate', make: (r) => { const n = r.int(b.length); return { bytes: b.slice(0, n), desc: `truncated to ${n} bytes`, expect: 'error' }; } },
    {
      kind: 'header-length',
      make: (r) => {
        const v = r.pick([0n, 1n, 7n, BigInt(hlen - 1), BigInt(hlen + 1), BigInt(hlen - 8), BigInt(hlen + 8), BigInt(b.length), BigInt(b.length - 7), 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 100_000_001n, r.u64()]);
        const near = v >= BigInt(hlen - 8) && v <= BigInt(hlen + 8);
        return { bytes: setU64(copy(b), 0, v), desc: `header length ${hlen} -> ${v}`, expect: near ? 'any' : 'error' };
      },
    },
    {
      kind: 'data-offsets',
      make: (r) => {
        const { name, t } = entry(r);
        const [s, e] = t.data_offsets;
        const D = data.length;
        const opts: [unknown, Expect][] = [
          [[s, D + 4], 'error'], [[D + 4, D + 8 + (e - s)], 'error'], [[-1, e], 'error'], [[e, s], 'error'], [[s + 0.5, e], 'error'],
          ['x', 'error'], [[s], 'error'], [[s, e, 0], 'error'], [[2 ** 53, 2 ** 53 + (e - s)], 'error'], [[1e300, 1e300], 'error'],
          [[s + 4, e + 4], e + 4 <= D ? 'any' : 'error'], [[0, e - s], 'any'], [null, 'error'], [[String(s), String(e)], 'error'],
        ];
        const [v, expect] = r.pick(opts);
        return { bytes: withHeader({ ...header, [name]: { ...t, data_offsets: v } }), desc: `${name}.data_offsets = ${JSON.stringify(v)}`, expect };
      },
    },
    {
      kind: 'shape',
      make: (r) => {
        const { name, t } = entry(r);
        const v = r.pick([[2 ** 31, 2 ** 31, 2 ** 31], [2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31], [-1], [1.5], [], [0], 'x', null,
          [2 ** 53], [1e300], [...t.shape, 1], t.shape.slice().reverse().concat([2]), [t.shape[0]! * 2], Array(9).fill(1)]);
        return { bytes: withHeader({ ...header, [name]: { ...t, shape: v } }), desc: `${name}.shape = ${JSON.stringify(v)}`, expect: 'error' };
      },
    },
    {
      kind: 'dtype',
      make: (r) => {
        const { name, t } = entry(r);
        const v = r.pick(['F16', 'BF16', 'F64', 'I8', 'U8', 'Q4_0', 'f32', 7, null, '', 'F8_E4M3']);
        return { bytes: withHeader({ ...header, [name]: { ...t, dtype: v } }), desc: `${name}.dtype = ${JSON.stringify(v)}`, expect: 'error' };
      },
    },
    {
      kind: 'remove-tensor',
      make: (r) => {
        const { name } = entry(r);
        const h = { ...header };
        delete h[name];
        return { bytes: withHeader(h), desc: `${name} removed from the header`, expect: 'error' };
      },
    },
    {
      kind: 'broken-header',
      make: (r) => {
        const choice = r.int(3);
        if (choice === 0) {
          const t = r.pick(['[]', 'null', '5', '"x"', '{"a":1}', '{"model.norm.weight":null}', '{"model.norm.weight":5}']);
          return { bytes: joinSafetensors(utf8(t), data), desc: `header ${t}`, expect: 'error' };
        }
        // Cut the JSON short and pad it back to its length with spaces.
        const n = r.int(hlen);
        const hb = new Uint8Array(hlen).fill(0x20);
        hb.set(headerBytes.subarray(0, n));
        return { bytes: joinSafetensors(hb, data), desc: `header JSON cut at ${n}`, expect: parses(hb) ? 'any' : 'error' };
      },
    },
    {
      kind: 'nan-weight',
      make: (r) => {
        const { name, t } = entry(r);
        const [s, e] = t.data_offsets;
        return nonFinite(r, b, 8 + hlen + s + 4 * r.int((e - s) / 4), `tensor ${name}`);
      },
    },
    {
      kind: 'invalid-utf8',
      make: (r) => {
        const text = new TextDecoder().decode(headerBytes);
        const m = jsonUtf8(r, text);
        return { bytes: joinSafetensors(m.bytes!, data), desc: `header: ${m.desc}`, expect: 'error' };
      },
    },
    {
      kind: 'extra-tensor',
      make: (r) => {
        const v = r.pick([
          { dtype: 'F32', shape: [2 ** 31, 2 ** 31], data_offsets: [0, 0] },
          { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
          { dtype: 'F32', shape: [4], data_offsets: [data.length, data.length + 16] },
          { dtype: 'I64', shape: [2 ** 50], data_offsets: [0, 8] },
        ]);
        const ok = v.shape[0] === 4 && v.data_offsets[0] === 0;
        return { bytes: withHeader({ ...header, 'extra.weight': v }), desc: `extra tensor ${JSON.stringify(v)}`, expect: ok ? 'any' : 'error' };
      },
    },
  ];
}
