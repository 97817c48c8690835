/**
 * Helpers for the loader fuzz suite: a seeded PRNG, byte-level edits, and walkers that locate
 * the fields of the real files (llama2.c header and tokenizer records, GGUF header fields,
 * safetensors header) so that mutations can target them.
 */

/** mulberry32: a small deterministic 32-bit PRNG. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  i32(): number {
    return this.u32() | 0;
  }
  float(): number {
    return this.u32() / 2 ** 32;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  /** An integer in [a, b]. */
  range(a: number, b: number): number {
    return a + this.int(b - a + 1);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

export const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b);
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
export const getI32 = (b: Uint8Array, pos: number): number => dv(b).getInt32(pos, true);
export const getU32 = (b: Uint8Array, pos: number): number => dv(b).getUint32(pos, true);
export const getU64 = (b: Uint8Array, pos: number): bigint => dv(b).getBigUint64(pos, true);
export const getF32 = (b: Uint8Array, pos: number): number => dv(b).getFloat32(pos, true);
export function setI32(b: Uint8Array, pos: number, v: number): Uint8Array {
  dv(b).setInt32(pos, v, true);
  return b;
}
export function setU32(b: Uint8Array, pos: number, v: number): Uint8Array {
  dv(b).setUint32(pos, v >>> 0, true);
  return b;
}
export function setU64(b: Uint8Array, pos: number, v: bigint): Uint8Array {
  dv(b).setBigUint64(pos, BigInt.asUintN(64, v), true);
  return b;
}
export function setF32Bits(b: Uint8Array, pos: number, bits: number): Uint8Array {
  dv(b).setUint32(pos, bits >>> 0, true);
  return b;
}
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Non-finite float32 bit patterns: quiet NaN, signalling NaN, negative NaN, +Inf, -Inf. */
export const NON_FINITE_BITS = [0x7fc00000, 0x7f800001, 0xffffffff, 0x7f800000, 0xff800000] as const;

/** Byte sequences that are never valid UTF-8 (some only at the end of a string). */
export const INVALID_UTF8: readonly number[][] = [
  [0xff], // never valid
  [0xfe],
  [0x80], // lone continuation byte
  [0xc0, 0x80], // overlong NUL
  [0xed, 0xa0, 0x80], // UTF-16 surrogate
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0xc3], // lead byte without its continuation (placed at the end of a string)
];

// ---------------------------------------------------------------- llama2.c

export interface Llama2cLayout {
  header: number[];
  /** Bytes [28, weightsEnd) hold the weights the loader reads (freq_cis excluded). */
  weightsEnd: number;
  size: number;
}

export function llama2cLayout(b: Uint8Array): Llama2cLayout {
  const h = Array.from({ length: 7 }, (_, i) => getI32(b, 4 * i));
  const [dim, hidden, nLayers, nHeads, nKv, vocabRaw] = h as [number, number, number, number, number, number];
  const vocab = Math.abs(vocabRaw);
  const kvDim = (nKv * dim) / nHeads;
  const floats = vocab * dim + nLayers * (2 * dim + 2 * dim * dim + 2 * kvDim * dim + 3 * hidden * dim) + dim;
  return { header: h, weightsEnd: 28 + 4 * floats, size: b.length };
}

export interface TokRecord {
  scorePos: number;
  lenPos: number;
  bytesPos: number;
  len: number;
  end: number;
}

export function llama2cTokRecords(b: Uint8Array): { maxLen: number; records: TokRecord[] } {
  const maxLen = getI32(b, 0);
  const records: TokRecord[] = [];
  let o = 4;
  while (o < b.length) {
    const len = getI32(b, o + 4);
    records.push({ scorePos: o, lenPos: o + 4, bytesPos: o + 8, len, end: o + 8 + len });
    o += 8 + len;
  }
  return { maxLen, records };
}

// ---------------------------------------------------------------- GGUF

export interface GgufString {
  lenPos: number;
  bytesPos: number;
  len: number;
  what: string;
}
export interface GgufKv {
  key: string;
  keyStr: GgufString;
  typePos: number;
  type: number;
  valuePos: number;
  /** For arrays: element type and length positions. */
  arrayTypePos?: number;
  arrayLenPos?: number;
  arrayLen?: number;
  arrayElemType?: number;
}
export interface GgufTensor {
  name: string;
  nameStr: GgufString;
  ndimsPos: number;
  dimsPos: number[];
  dims: number[];
  typePos: number;
  type: number;
  offsetPos: number;
  rel: number;
  /** Absolute data range. */
  start: number;
  end: number;
}
export interface GgufLayout {
  tensorCountPos: number;
  kvCountPos: number;
  nTensors: number;
  nKv: number;
  kvs: GgufKv[];
  strings: GgufString[];
  tensors: GgufTensor[];
  dataOffset: number;
  dataEnd: number;
  size: number;
}

const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
/** ggml type id -> [values per block, bytes per block] of the types kloop reads (ggml-common.h). */
export const GGML_BLOCKS: Record<number, readonly [number, number]> = {
  0: [1, 4], 1: [1, 2], 30: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34], 12: [256, 144], 13: [256, 176], 14: [256, 210],
};
/** Bytes of `count` values of ggml type `type` (NaN for types kloop does not read). */
export const ggmlBytes = (type: number, count: number): number => {
  const b = GGML_BLOCKS[type];
  return b ? (count / b[0]) * b[1] : NaN;
};

/** Walk a well-formed GGUF file (the real one) and record where each field lies. */
export function ggufLayout(b: Uint8Array): GgufLayout {
  const dec = new TextDecoder();
  let o = 8;
  const nTensors = Number(getU64(b, o));
  const tensorCountPos = o;
  o += 8;
  const nKv = Number(getU64(b, o));
  const kvCountPos = o;
  o += 8;
  const strings: GgufString[] = [];
  const str = (what: string): GgufString => {
    const len = Number(getU64(b, o));
    const s = { lenPos: o, bytesPos: o + 8, len, what };
    o += 8 + len;
    strings.push(s);
    return s;
  };
  const kvs: GgufKv[] = [];
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const keyStr = str(`key ${i}`);
    const key = dec.decode(b.subarray(keyStr.bytesPos, keyStr.bytesPos + keyStr.len));
    const typePos = o;
    const type = getU32(b, o);
    o += 4;
    const kv: GgufKv = { key, keyStr, typePos, type, valuePos: o };
    if (type === 8) str(`value of ${key}`);
    else if (type === 9) {
      kv.arrayTypePos = o;
      kv.arrayElemType = getU32(b, o);
      o += 4;
      kv.arrayLenPos = o;
      kv.arrayLen = Number(getU64(b, o));
      o += 8;
      for (let j = 0; j < kv.arrayLen; j++) {
        if (kv.arrayElemType === 8) str(`${key}[${j}]`);
        else o += SCALAR_BYTES[kv.arrayElemType]!;
      }
    } else {
      if (key === 'general.alignment') alignment = getU32(b, o);
      o += SCALAR_BYTES[type]!;
    }
    kvs.push(kv);
  }
  const infos: Omit<GgufTensor, 'start' | 'end'>[] = [];
  for (let i = 0; i < nTensors; i++) {
    const nameStr = str(`tensor ${i} name`);
    const name = dec.decode(b.subarray(nameStr.bytesPos, nameStr.bytesPos + nameStr.len));
    const ndimsPos = o;
    const nd = getU32(b, o);
    o += 4;
    const dimsPos: number[] = [];
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) {
      dimsPos.push(o);
      dims.push(Number(getU64(b, o)));
      o += 8;
    }
    const typePos = o;
    const type = getU32(b, o);
    o += 4;
    const offsetPos = o;
    const rel = Number(getU64(b, o));
    o += 8;
    infos.push({ name, nameStr, ndimsPos, dimsPos, dims, typePos, type, offsetPos, rel });
  }
  const dataOffset = Math.ceil(o / alignment) * alignment;
  const tensors = infos.map((t) => {
    const start = dataOffset + t.rel;
    const end = start + ggmlBytes(t.type, t.dims.reduce((a, d) => a * d, 1));
    return { ...t, start, end };
  });
  const dataEnd = Math.max(...tensors.map((t) => t.end));
  return { tensorCountPos, kvCountPos, nTensors, nKv, kvs, strings, tensors, dataOffset, dataEnd, size: b.length };
}

// ---------------------------------------------------------------- safetensors

export interface SafetensorsParts {
  header: Record<string, unknown>;
  /** Raw header bytes (JSON and its padding). */
  headerBytes: Uint8Array;
  data: Uint8Array;
}

export function splitSafetensors(b: Uint8Array): SafetensorsParts {
  const n = Number(getU64(b, 0));
  const headerBytes = b.subarray(8, 8 + n);
  return { header: JSON.parse(new TextDecoder().decode(headerBytes)) as Record<string, unknown>, headerBytes, data: b.subarray(8 + n) };
}

/** A safetensors file from raw header bytes (the length field says their length) and data. */
export function joinSafetensors(headerBytes: Uint8Array, data: Uint8Array): Uint8Array {
  const len = new Uint8Array(8);
  setU64(len, 0, BigInt(headerBytes.length));
  return concat(len, headerBytes, data);
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
