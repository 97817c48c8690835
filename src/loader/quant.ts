/**
 * Weight encodings: ggml's 16-bit and block-quantized formats (block layouts as ggml-common.h
 * defines them), and their exact dequantization. The CPU reference and `kloop convert` use
 * these; the WGSL matvec (src/kernels-wgsl/dequant.wgsl.ts) decodes the same blocks on the device.
 *
 * Every block starts with its scale(s) as IEEE half floats, except Q6_K (scale last):
 *   Q8_0  (32 values, 34 bytes): d, qs[32] int8                        x = d * q
 *   Q4_0  (32, 18): d, qs[16] (low nibbles: values 0..15, high: 16..31)   x = d * (q - 8)
 *   Q4_1  (32, 20): d, m, qs[16]                                       x = d * q + m
 *   Q5_0  (32, 22): d, qh (u32: the 5th bits), qs[16]                  x = d * (q - 16)
 *   Q5_1  (32, 24): d, m, qh, qs[16]                                   x = d * q + m
 *   Q4_K  (256, 144): d, dmin, scales[12] (8 six-bit scale/min pairs), qs[128]
 *                                                                      x = d * sc * q - dmin * m
 *   Q5_K  (256, 176): d, dmin, scales[12], qh[32], qs[128]
 *   Q6_K  (256, 210): ql[128], qh[64], scales[16] int8, d              x = d * sc * (q - 32)
 */
import type { Matrix, ModelWeights, PackedMatrix, WeightType } from './types.ts';
import { F16_TABLE } from './util.ts';

export interface BlockFormat {
  type: WeightType;
  /** ggml's type id (GGUF tensor info). */
  ggml: number;
  /** ggml's name (GGUF, llama.cpp). */
  name: string;
  /** Values per block. */
  blockElems: number;
  /** Bytes per block in the file. */
  blockBytes: number;
}

export const FORMATS: Record<WeightType, BlockFormat> = {
  f32: { type: 'f32', ggml: 0, name: 'F32', blockElems: 1, blockBytes: 4 },
  f16: { type: 'f16', ggml: 1, name: 'F16', blockElems: 1, blockBytes: 2 },
  bf16: { type: 'bf16', ggml: 30, name: 'BF16', blockElems: 1, blockBytes: 2 },
  q4_0: { type: 'q4_0', ggml: 2, name: 'Q4_0', blockElems: 32, blockBytes: 18 },
  q4_1: { type: 'q4_1', ggml: 3, name: 'Q4_1', blockElems: 32, blockBytes: 20 },
  q5_0: { type: 'q5_0', ggml: 6, name: 'Q5_0', blockElems: 32, blockBytes: 22 },
  q5_1: { type: 'q5_1', ggml: 7, name: 'Q5_1', blockElems: 32, blockBytes: 24 },
  q8_0: { type: 'q8_0', ggml: 8, name: 'Q8_0', blockElems: 32, blockBytes: 34 },
  q4_k: { type: 'q4_k', ggml: 12, name: 'Q4_K', blockElems: 256, blockBytes: 144 },
  q5_k: { type: 'q5_k', ggml: 13, name: 'Q5_K', blockElems: 256, blockBytes: 176 },
  q6_k: { type: 'q6_k', ggml: 14, name: 'Q6_K', blockElems: 256, blockBytes: 210 },
};

/** The format of a ggml type id, or undefined when kloop does not read it. */
export function formatOfGgml(id: number): BlockFormat | undefined {
  return Object.values(FORMATS).find((f) => f.ggml === id);
}

export function isPacked(m: Matrix): m is PackedMatrix {
  return !(m instanceof Float32Array);
}

export function matrixType(m: Matrix): WeightType {
  return isPacked(m) ? m.type : 'f32';
}

/** Bytes of one row of `cols` values (cols must be a multiple of the block). */
export function rowBytes(type: WeightType, cols: number): number {
  const f = FORMATS[type];
  if (cols % f.blockElems !== 0) throw new Error(`${f.name} rows need a multiple of ${f.blockElems} values, not ${cols}`);
  return (cols / f.blockElems) * f.blockBytes;
}

/**
 * The type llama.cpp's quantizer writes for rows of `cols` values when `type` does not fit
 * them: K-quants (256-value blocks) fall back to Q5_0 (Q4_K), Q5_1 (Q5_K) and Q8_0 (Q6_K), and
 * a 32-value block that does not fit falls back to F16.
 */
export function blockFallback(type: WeightType, cols: number): WeightType {
  let t = type;
  if (cols % FORMATS[t].blockElems !== 0) t = t === 'q4_k' ? 'q5_0' : t === 'q5_k' ? 'q5_1' : t === 'q6_k' ? 'q8_0' : t;
  if (cols % FORMATS[t].blockElems !== 0) t = 'f16';
  return t;
}

/** Bytes the matrix occupies in its encoding (what a decode step reads). */
export function matrixBytes(m: Matrix): number {
  return isPacked(m) ? m.data.byteLength : m.byteLength;
}

/** A PackedMatrix after checking that `data` holds exactly rows x cols values of `type`. */
export function packedMatrix(type: PackedMatrix['type'], rows: number, cols: number, data: Uint8Array): PackedMatrix {
  const want = rows * rowBytes(type, cols);
  if (data.byteLength !== want) throw new Error(`${FORMATS[type].name} matrix ${rows}x${cols} needs ${want} bytes, got ${data.byteLength}`);
  return { type, rows, cols, data };
}

const f16 = (b: Uint8Array, i: number): number => F16_TABLE[b[i]! | (b[i + 1]! << 8)]!;
const i8 = (v: number): number => (v << 24) >> 24;
const fr = Math.fround;

/** Q4_K / Q5_K: the six-bit scale and min of sub-block j (0..7) of the 12 packed bytes at `s`. */
export function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j]! & 63, b[s + j + 4]! & 63];
  return [(b[s + j + 4]! & 0xf) | ((b[s + j - 4]! >> 6) << 4), (b[s + j + 4]! >> 4) | ((b[s + j]! >> 6) << 4)];
}

/**
 * Decode one block of `type` starting at byte `o` of `b` into out[at .. at + blockElems).
 * Products are rounded to float32 as ggml computes them.
 */
export function dequantizeBlock(type: WeightType, b: Uint8Array, o: number, out: Float32Array, at: number): void {
  switch (type) {
    case 'f32':
      out[at] = new DataView(b.buffer, b.byteOffset + o, 4).getFloat32(0, true);
      return;
    case 'f16':
      out[at] = f16(b, o);
      return;
    case 'bf16':
      out[at] = new Float32Array(new Uint32Array([(b[o]! | (b[o + 1]! << 8)) << 16]).buffer)[0]!;
      return;
    case 'q8_0': {
      const d = f16(b, o);
      for (let j = 0; j < 32; j++) out[at + j] = fr(d * i8(b[o + 2 + j]!));
      return;
    }
    case 'q4_0': {
      const d = f16(b, o);
      for (let j = 0; j < 16; j++) {
        const q = b[o + 2 + j]!;
        out[at + j] = fr(d * ((q & 0xf) - 8));
        out[at + j + 16] = fr(d * ((q >> 4) - 8));
      }
      return;
    }
    case 'q4_1': {
      const d = f16(b, o);
      const m = f16(b, o + 2);
      for (let j = 0; j < 16; j++) {
        const q = b[o + 4 + j]!;
        out[at + j] = fr(fr(d * (q & 0xf)) + m);
        out[at + j + 16] = fr(fr(d * (q >> 4)) + m);
      }
      return;
    }
    case 'q5_0': {
      const d = f16(b, o);
      const qh = (b[o + 2]! | (b[o + 3]! << 8) | (b[o + 4]! << 16) | (b[o + 5]! << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const q = b[o + 6 + j]!;
        const h0 = ((qh >>> j) << 4) & 0x10;
        const h1 = (qh >>> (j + 12)) & 0x10;
        out[at + j] = fr(d * (((q & 0xf) | h0) - 16));
        out[at + j + 16] = fr(d * (((q >> 4) | h1) - 16));
      }
      return;
    }
    case 'q5_1': {
      const d = f16(b, o);
      const m = f16(b, o + 2);
      const qh = (b[o + 4]! | (b[o + 5]! << 8) | (b[o + 6]! << 16) | (b[o + 7]! << 24)) >>> 0;
      for (let j = 0; j < 16; j++) {
        const q = b[o + 8 + j]!;
        const h0 = ((qh >>> j) << 4) & 0x10;
        const h1 = (qh >>> (j + 12)) & 0x10;
        out[at + j] = fr(fr(d * ((q & 0xf) | h0)) + m);
        out[at + j + 16] = fr(fr(d * ((q >> 4) | h1)) + m);
      }
      return;
    }
    case 'q4_k':
    case 'q5_k': {
      const d = f16(b, o);
      const dmin = f16(b, o + 2);
      const five = type === 'q5_k';
      const qh = o + 16;
      let q = o + (five ? 48 : 16);
      let y = at;
      for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
        const [sc1, m1] = scaleMinK4(b, o + 4, is);
        const [sc2, m2] = scaleMinK4(b, o + 4, is + 1);
        const d1 = fr(d * sc1), mm1 = fr(dmin * m1);
        const d2 = fr(d * sc2), mm2 = fr(dmin * m2);
        const u1 = 1 << is, u2 = 2 << is;
        for (let l = 0; l < 32; l++) {
          const hi = five && b[qh + l]! & u1 ? 16 : 0;
          out[y + l] = fr(fr(d1 * ((b[q + l]! & 0xf) + hi)) - mm1);
        }
        for (let l = 0; l < 32; l++) {
          const hi = five && b[qh + l]! & u2 ? 16 : 0;
          out[y + 32 + l] = fr(fr(d2 * ((b[q + l]! >> 4) + hi)) - mm2);
        }
        q += 32;
        y += 64;
      }
      return;
    }
    case 'q6_k': {
      const d = f16(b, o + 208);
      let ql = o, qh = o + 128, sc = o + 192, y = at;
      for (let n = 0; n < 256; n += 128) {
        for (let l = 0; l < 32; l++) {
          const is = l >> 4;
          const h = b[qh + l]!;
          const q1 = ((b[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
          const q2 = ((b[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
          const q3 = ((b[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
          const q4 = ((b[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
          out[y + l] = fr(fr(d * i8(b[sc + is]!)) * q1);
          out[y + l + 32] = fr(fr(d * i8(b[sc + is + 2]!)) * q2);
          out[y + l + 64] = fr(fr(d * i8(b[sc + is + 4]!)) * q3);
          out[y + l + 96] = fr(fr(d * i8(b[sc + is + 6]!)) * q4);
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
      }
      return;
    }
  }
}

/** Row `r` of `m` as float32 values, into out[at .. at + cols). */
export function dequantizeRow(m: Matrix, r: number, out: Float32Array, at = 0): void {
  if (!isPacked(m)) throw new Error('dequantizeRow: a Float32Array matrix needs no decoding (use matrixRow)');
  const f = FORMATS[m.type];
  const rb = rowBytes(m.type, m.cols);
  const base = r * rb;
  for (let k = 0, o = base; k < m.cols; k += f.blockElems, o += f.blockBytes) dequantizeBlock(m.type, m.data, o, out, at + k);
}

/** Row `r` of a matrix of `cols` columns as float32 (a view for f32 matrices, a decoded copy otherwise). */
export function matrixRow(m: Matrix, r: number, cols: number, scratch?: Float32Array): Float32Array {
  if (!isPacked(m)) return m.subarray(r * cols, (r + 1) * cols);
  const out = scratch && scratch.length >= cols ? scratch.subarray(0, cols) : new Float32Array(cols);
  dequantizeRow(m, r, out);
  return out;
}

/** The whole matrix as float32 (the same array for f32 matrices). */
export function dequantize(m: Matrix): Float32Array {
  if (!isPacked(m)) return m;
  const out = new Float32Array(m.rows * m.cols);
  for (let r = 0; r < m.rows; r++) dequantizeRow(m, r, out, r * m.cols);
  return out;
}

/** Byte offsets, inside a block, of the half-float scale fields (d, and dmin / m where present). */
export const SCALE_FIELDS: Partial<Record<WeightType, readonly number[]>> = {
  q8_0: [0],
  q4_0: [0],
  q4_1: [0, 2],
  q5_0: [0],
  q5_1: [0, 2],
  q4_k: [0, 2],
  q5_k: [0, 2],
  q6_k: [208],
};

/**
 * The first problem of `data` holding blocks (or 16-bit values) of `type`: the index of the
 * first block whose f16 scale (d, dmin, m) is NaN or infinite, or for f16 / bf16 the index of
 * the first non-finite value; -1 when every one is finite.
 */
export function firstNonFinite(type: Exclude<WeightType, 'f32'>, data: Uint8Array): number {
  const f = FORMATS[type];
  const n = Math.floor(data.byteLength / f.blockBytes);
  if (type === 'f16' || type === 'bf16') {
    // f16: exponent bits 0x7c00 all set; bf16: 0x7f80.
    const mask = type === 'f16' ? 0x7c00 : 0x7f80;
    for (let i = 0; i < n; i++) if (((data[2 * i]! | (data[2 * i + 1]! << 8)) & mask) === mask) return i;
    return -1;
  }
  const fields = SCALE_FIELDS[type]!;
  for (let i = 0, o = 0; i < n; i++, o += f.blockBytes) {
    for (const s of fields) if ((data[o + s + 1]! & 0x7c) === 0x7c) return i;
  }
  return -1;
}

/** The nearest IEEE half float (as its 16 bits) to `v`, rounding ties to even, as ggml's GGML_FP32_TO_FP16. */
export function f32ToF16(v: number): number {
  const x = Math.fround(v);
  const u = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    // Subnormal half: shift the mantissa (with its implicit bit) right, round to nearest even.
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry into the exponent is right (up to infinity)
  return sign | h;
}

/** Short type summary of a set of matrices, e.g. "q4_0 x 20, q8_0 x 1, f32 x 1". */
export function typeSummary(ms: Matrix[]): string {
  const n = new Map<WeightType, number>();
  for (const m of ms) n.set(matrixType(m), (n.get(matrixType(m)) ?? 0) + 1);
  return [...n].map(([t, k]) => `${t} x ${k}`).join(', ');
}

/** Every weight matrix of a model once (a tied classifier is the embedding table). */
export function modelMatrices(w: ModelWeights): Matrix[] {
  const out: Matrix[] = [w.tokEmb];
  for (const l of w.layers) out.push(l.wq, l.wk, l.wv, l.wo, l.w1, l.w3, l.w2);
  if (w.wcls !== w.tokEmb) out.push(w.wcls);
  return out;
}
