/**
 * ggml block formats: every decoder against values computed by hand from the block layouts of
 * ggml-common.h (and dequantize_row_* in ggml-quants.c), the quantizers against llama.cpp's
 * reference rounding on hand-checked blocks, and the half-float helpers.
 */
import { describe, expect, it } from 'vitest';
import { FORMATS, dequantize, dequantizeBlock, dequantizeRow, f32ToF16, firstNonFinite, packedMatrix, scaleMinK4 } from '../../src/loader/quant.ts';
import { quantError, quantizeMatrix, quantizeRow } from '../../src/loader/quantize.ts';
import type { WeightType } from '../../src/loader/types.ts';
import { F16_TABLE } from '../../src/loader/util.ts';

/** A block of `type` with the given bytes set (the rest zero). */
function block(type: WeightType, set: Record<number, number>): Uint8Array {
  const b = new Uint8Array(FORMATS[type].blockBytes);
  for (const [k, v] of Object.entries(set)) b[Number(k)] = v;
  return b;
}
const f16le = (h: number): Record<number, number> => ({ 0: h & 0xff, 1: h >> 8 });
function decode(type: WeightType, b: Uint8Array, at = 0): Float32Array {
  const out = new Float32Array(FORMATS[type].blockElems + at);
  dequantizeBlock(type, b, 0, out, at);
  return out.subarray(at);
}

describe('block layouts', () => {
  it('sizes and ggml type ids are ggml-common.h\'s', () => {
    const got = Object.values(FORMATS).map((f) => [f.name, f.ggml, f.blockElems, f.blockBytes]);
    expect(got).toEqual([
      ['F32', 0, 1, 4], ['F16', 1, 1, 2], ['BF16', 30, 1, 2], ['Q4_0', 2, 32, 18], ['Q4_1', 3, 32, 20], ['Q5_0', 6, 32, 22],
      ['Q5_1', 7, 32, 24], ['Q8_0', 8, 32, 34], ['Q4_K', 12, 256, 144], ['Q5_K', 13, 256, 176], ['Q6_K', 14, 256, 210],
    ]);
  });
});

describe('decoding one block of each type', () => {
  it('f32, f16 (normal, negative, subnormal), bf16', () => {
    expect(decode('f32', new Uint8Array(new Float32Array([-1.5]).buffer))[0]).toBe(-1.5);
    expect(decode('f16', block('f16', f16le(0x3c00)))[0]).toBe(1);
    expect(decode('f16', block('f16', f16le(0xc000)))[0]).toBe(-2);
    expect(decode('f16', block('f16', f16le(0x0001)))[0]).toBe(2 ** -24);
    expect(decode('f16', block('f16', f16le(0x7bff)))[0]).toBe(65504);
    expect(decode('bf16', block('bf16', f16le(0x3f80)))[0]).toBe(1);
    expect(decode('bf16', block('bf16', f16le(0xc040)))[0]).toBe(-3);
  });

  it('q8_0: d times signed bytes', () => {
    const y = decode('q8_0', block('q8_0', { ...f16le(0x3800), 2: 0x80, 3: 0xff, 4: 0, 5: 1, 6: 0x7f, 33: 0x81 }));
    expect(Array.from(y.subarray(0, 5))).toEqual([-64, -0.5, 0, 0.5, 63.5]);
    expect(y[31]).toBe(-63.5);
    // A subnormal scale.
    expect(decode('q8_0', block('q8_0', { ...f16le(0x0001), 2: 0x80 }))[0]).toBe(-128 * 2 ** -24);
  });

  it('q4_0: low nibbles are values 0..15, high nibbles 16..31, x = d (q - 8)', () => {
    const y = decode('q4_0', block('q4_0', { ...f16le(0x4000), 2: 0xf0, 3: 0x8f, 17: 0x07 }));
    expect([y[0], y[16], y[1], y[17], y[15], y[31], y[5]]).toEqual([-16, 14, 14, 0, -2, -16, -16]);
  });

  it('q4_1: x = d q + m, with a negative and a positive offset', () => {
    const y = decode('q4_1', block('q4_1', { ...f16le(0x3800), 2: 0x00, 3: 0xc2, 4: 0x0f, 5: 0x52, 6: 0xf0 }));
    expect([y[0], y[16], y[1], y[17], y[2], y[18], y[3]]).toEqual([4.5, -3, -2, -0.5, -3, 4.5, -3]);
    const z = decode('q4_1', block('q4_1', { 2: 0x00, 3: 0x3d, 4: 0xff })); // d = 0, m = 1.25
    expect(Array.from(new Set(z))).toEqual([1.25]);
  });

  it('q5_0: the fifth bits come from qh (bit j for value j, bit j + 16 for value j + 16)', () => {
    // qh = bits 0, 16 and 31; qs[0] = 0x00, qs[15] = 0xff, qs[1] = 0x21.
    const y = decode('q5_0', block('q5_0', { ...f16le(0x3c00), 2: 0x01, 3: 0x00, 4: 0x01, 5: 0x80, 6: 0x00, 21: 0xff, 7: 0x21 }));
    expect([y[0], y[16], y[15], y[31], y[1], y[17]]).toEqual([0, 0, -1, 15, -15, -14]);
    // No high bits: plain q - 16.
    expect(decode('q5_0', block('q5_0', { ...f16le(0x4000), 6: 0xff }))[0]).toBe(-2);
  });

  it('q5_1: d * q + m with the fifth bits from qh', () => {
    // d = 1, m = -2; qh = bits 0, 16 and 31; qs[0] = 0x00, qs[15] = 0xff, qs[1] = 0x21.
    const y = decode('q5_1', block('q5_1', { ...f16le(0x3c00), 2: 0x00, 3: 0xc0, 4: 0x01, 5: 0x00, 6: 0x01, 7: 0x80, 8: 0x00, 23: 0xff, 9: 0x21 }));
    expect([y[0], y[16], y[15], y[31], y[1], y[17]]).toEqual([14, 14, 13, 29, -1, 0]);
  });

  // Q4_K / Q5_K scales: sub-block j has six-bit scale sc[j] and min m[j], packed as
  //   j < 4:  bytes[j] = sc | (sc[j+4] >> 4) << 6,  bytes[j+4] = m | (m[j+4] >> 4) << 6
  //   j >= 4: bytes[j+4] = (sc & 15) | (m & 15) << 4.
  // sc = [1, 2, 3, 63, 5, 33, 48, 63], m = [0, 1, 63, 4, 7, 40, 17, 63] pack by hand to:
  const SC = [1, 2, 3, 63, 5, 33, 48, 63];
  const MN = [0, 1, 63, 4, 7, 40, 17, 63];
  const PACKED = [0x01, 0x82, 0xc3, 0xff, 0x00, 0x81, 0x7f, 0xc4, 0x75, 0x81, 0x10, 0xff];
  /** qs of group g (sub-blocks 2g, 2g+1): byte l = (l & 15) | (15 - (l & 15)) << 4. */
  const kQs = (at: number): Record<number, number> => {
    const r: Record<number, number> = {};
    for (let i = 0; i < 128; i++) r[at + i] = (i & 15) | ((15 - (i & 15)) << 4);
    return r;
  };
  const kScales = (at: number): Record<number, number> => Object.fromEntries(PACKED.map((v, i) => [at + i, v]));

  it('Q4_K / Q5_K six-bit scales and mins, including the high bits of sub-blocks 4..7', () => {
    const b = Uint8Array.from(PACKED);
    for (let j = 0; j < 8; j++) expect(scaleMinK4(b, 0, j), `sub-block ${j}`).toEqual([SC[j], MN[j]]);
  });

  it('q4_k: x = d sc q - dmin m, for positive, negative and zero dmin', () => {
    for (const [dminBits, dmin] of [[0x3800, 0.5], [0xb800, -0.5], [0x0000, 0]] as const) {
      const y = decode('q4_k', block('q4_k', { ...f16le(0x3c00), 2: dminBits & 0xff, 3: dminBits >> 8, ...kScales(4), ...kQs(16) }));
      // Literal values: sub-block 0 value 0; sub-block 1 value 0 (q = 15); sub-block 3 value 5 (q = 10);
      // sub-block 4 value 31 (q = 15); sub-block 7 value 31 (q = 0).
      expect([y[0], y[32], y[101], y[159], y[255]]).toEqual([0, 2 * 15 - dmin * 1, 63 * 10 - dmin * 4, 5 * 15 - dmin * 7, 0 - dmin * 63]);
      for (let i = 0; i < 256; i++) {
        const s = i >> 5, l = i & 31;
        const q = s % 2 === 0 ? l & 15 : 15 - (l & 15);
        expect(y[i], `value ${i}`).toBe(SC[s]! * q - dmin * MN[s]!);
      }
    }
  });

  it('q5_k: the fifth bit of value l of sub-block s is bit s of qh[l]', () => {
    const qh: Record<number, number> = { 16: 0xff, 17: 0x00, 18: 0x81, 47: 0x40 };
    const y = decode('q5_k', block('q5_k', { ...f16le(0x3c00), ...f16le(0x3800), 0: 0x00, 1: 0x3c, 2: 0x00, 3: 0x38, ...kScales(4), ...qh, ...kQs(48) }));
    // value 0 (sub-block 0, q = 0 + 16), value 32 (sub-block 1, q = 15 + 16), value 33 (q = 14, no bit),
    // value 224 (sub-block 7, l = 0: q = 15 + 16), value 2 (sub-block 0, q = 2 + 16), value 226 (sub-block 7, l = 2: 13 + 16),
    // value 223 (sub-block 6, l = 31: q = 15 + 16 from bit 6 of qh[31]).
    expect([y[0], y[32], y[33], y[224], y[2], y[226], y[223]]).toEqual([
      16, 2 * 31 - 0.5, 2 * 14 - 0.5, 63 * 31 - 0.5 * 63, 1 * 18 - 0, 63 * 29 - 0.5 * 63, 48 * 15 + 48 * 16 - 0.5 * 17,
    ]);
    expect(y[1]).toBe(1 * 1 - 0); // qh[1] = 0
  });

  it('q6_k: four 6-bit values per (ql, qh) position, int8 scales (negative too), every 2-bit high value', () => {
    const sc = [1, -1, 2, -2, 3, -128, 127, -3, 4, 5, 6, 7, 8, 9, 10, 11];
    const set: Record<number, number> = { 208: 0x00, 209: 0x38 }; // d = 0.5
    sc.forEach((v, i) => (set[192 + i] = v & 0xff));
    // First half: qh[0..3] = 0x00, 0x55, 0xaa, 0xff (each 2-bit field 0, 1, 2, 3), ql = 0 there.
    Object.assign(set, { 128: 0x00, 129: 0x55, 130: 0xaa, 131: 0xff });
    // l = 16 (scales 1, 3, 5, 7): ql[16] = 0xf7, ql[48] = 0x3a, qh[16] = 0b11100100.
    Object.assign(set, { 16: 0xf7, 48: 0x3a, 144: 0xe4 });
    // Second half (ql at 64, qh at 160, scales 8..15): ql[64] = 0x21, ql[96] = 0x43, qh[160] = 0b00011011.
    Object.assign(set, { 64: 0x21, 96: 0x43, 160: 0x1b });
    const y = decode('q6_k', block('q6_k', set));
    const want: Record<number, number> = {
      0: -16, 32: -32, 64: -48, 96: -2032, // q = -32 everywhere, scales 1, 2, 3, 127
      1: -8, 33: -16, 65: -24, 97: -1016, // q = -16
      2: 0, 34: 0, 66: 0, 98: 0, // q = 0
      3: 8, 35: 16, 67: 24, 99: 1016, // q = 16
      16: 12.5, 48: 6, 80: -960, 112: -28.5, // q = -25, -6, 15, 19 with scales -1, -2, -128, -3
      5: -16, 17: 16, // ql = qh = 0: q = -32 (scale 1, then -1 from l = 16 on)
      128: 34, 160: 9, 192: -56, 224: -140, // q = 17, 3, -14, -28 with scales 4, 6, 8, 10
      129: -64, 255: -16 * 11,
    };
    for (const [i, v] of Object.entries(want)) expect(y[Number(i)], `value ${i}`).toBe(v);
  });

  it('decodes at an offset and by rows', () => {
    const b = block('q4_0', { ...f16le(0x3c00), 2: 0x1f });
    expect(decode('q4_0', b, 5)[0]).toBe(7);
    const two = new Uint8Array(36);
    two.set(b, 0);
    two.set(block('q4_0', { ...f16le(0x4000), 2: 0x1f }), 18);
    const m = packedMatrix('q4_0', 2, 32, two);
    const row = new Float32Array(32);
    dequantizeRow(m, 1, row);
    expect([row[0], row[16]]).toEqual([14, -14]);
    expect(() => packedMatrix('q4_0', 2, 32, two.subarray(0, 35))).toThrow(/needs 36 bytes, got 35/);
    expect(() => packedMatrix('q4_0', 1, 40, two)).toThrow(/multiple of 32/);
  });
});

describe('non-finite scales', () => {
  it('finds the first block whose d, dmin or m is NaN or infinite', () => {
    const q = new Uint8Array(3 * 34);
    expect(firstNonFinite('q8_0', q)).toBe(-1);
    q[34 + 1] = 0x7c; // block 1: d = +inf
    expect(firstNonFinite('q8_0', q)).toBe(1);
    const k = new Uint8Array(2 * 144);
    k[144 + 3] = 0xfe; // block 1: dmin = NaN
    expect(firstNonFinite('q4_k', k)).toBe(1);
    const q41 = new Uint8Array(20);
    q41[3] = 0xfc; // m = -inf
    expect(firstNonFinite('q4_1', q41)).toBe(0);
    const q6 = new Uint8Array(210);
    q6[0] = 0xff; // quant bytes are not scales
    expect(firstNonFinite('q6_k', q6)).toBe(-1);
    q6[209] = 0x7e;
    expect(firstNonFinite('q6_k', q6)).toBe(0);
    expect(firstNonFinite('f16', Uint8Array.from([0, 0x3c, 0, 0xfc]))).toBe(1);
    expect(firstNonFinite('bf16', Uint8Array.from([0x80, 0x3f, 0xc0, 0x7f]))).toBe(1);
  });
});

describe('f32 -> f16 (round to nearest even)', () => {
  it.each([
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00], [-Infinity, 0xfc00], [-0, 0x8000],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00],
    [1 + 3 * 2 ** -11, 0x3c02], [16 / 127, 0x3008], [0.1, 0x2e66],
  ])('%s -> %s', (v, h) => {
    expect(f32ToF16(v)).toBe(h);
  });
  it('NaN stays NaN; every half float survives the round trip', () => {
    expect(Number.isNaN(F16_TABLE[f32ToF16(NaN)]!)).toBe(true);
    for (let h = 0; h < 0x10000; h++) if ((h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0) expect(f32ToF16(F16_TABLE[h]!)).toBe(h);
  });
});

describe('quantizers', () => {
  const enc = (type: 'q8_0' | 'q4_0' | 'q5_0', x: number[]) => {
    const out = new Uint8Array(FORMATS[type].blockBytes);
    quantizeRow(type, Float32Array.from(x), out);
    return out;
  };
  it('q8_0: d = amax / 127 as f16, q = roundf(x / d)', () => {
    const b = enc('q8_0', Array.from({ length: 32 }, (_, j) => j - 16));
    // d = 16/127 = 0.1259842... -> f16 0x3008 (0.1259765625); 1/d = 7.9375.
    expect([b[0], b[1]]).toEqual([0x08, 0x30]);
    expect([b[2], b[3], b[16], b[18], b[20], b[33]]).toEqual([0x81, 0x89, 0xf0, 0x00, 0x10, 0x77]); // -127, -119, -16, 0, 16, 119
    // roundf: halves away from zero (JavaScript's Math.round would give -2 for -2.5).
    const t = enc('q8_0', [127, 2.5, -2.5, 0.5, -0.5, ...Array(27).fill(0)]);
    expect([t[0], t[1]]).toEqual([0x00, 0x3c]);
    expect(Array.from(t.subarray(2, 7))).toEqual([127, 3, 0xfd, 1, 0xff]);
    expect(Array.from(enc('q8_0', Array(32).fill(0)))).toEqual(Array(34).fill(0));
  });
  it('q4_0: d = (value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5))', () => {
    const x = Array(32).fill(0);
    Object.assign(x, { 0: -8, 1: 7, 2: 7.4, 3: 0, 4: 0.5, 5: -0.5, 6: 1.49, 16: -7.6, 17: 3.2 });
    const b = enc('q4_0', x);
    expect([b[0], b[1]]).toEqual([0x00, 0x3c]); // d = 1
    expect(Array.from(b.subarray(2, 18))).toEqual([0x00, 0xbf, 0x8f, 0x88, 0x89, 0x88, 0x89, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88]);
    // A positive maximum: d = -1, and -8 clips to q = 15 (decodes to -7), as in llama.cpp.
    const p = enc('q4_0', [8, -8, ...Array(30).fill(0)]);
    expect([p[0], p[1], p[2], p[3]]).toEqual([0x00, 0xbc, 0x80, 0x8f]);
    expect(Array.from(dequantize(packedMatrix('q4_0', 1, 32, p)).subarray(0, 3))).toEqual([8, -7, -0]); // -1 * (8 - 8)
  });
  it('q5_0: d = max / -16, the fifth bits in qh', () => {
    const b = enc('q5_0', Array.from({ length: 32 }, (_, j) => j - 16));
    expect(Array.from(b.subarray(0, 6))).toEqual([0x00, 0x3c, 0x00, 0x00, 0xff, 0xff]);
    expect([b[6], b[7], b[21]]).toEqual([0x00, 0x11, 0xff]);
    expect(Array.from(dequantize(packedMatrix('q5_0', 1, 32, b)))).toEqual(Array.from({ length: 32 }, (_, j) => j - 16));
  });

  /** Seeded normal-ish values with a few outliers. */
  function weights(n: number, seed: number): Float32Array {
    let s = seed >>> 0;
    const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) * 0.02 + (i % 97 === 0 ? 0.1 : 0);
    return x;
  }
  it.each([
    // Outliers (5 sigma every 97 values) set the scale of their blocks, as in real weights.
    ['q8_0', 0.01], ['q5_0', 0.07], ['q4_0', 0.14], ['q6_k', 0.03], ['q4_k', 0.1], ['f16', 1e-3],
  ] as const)('%s: RMS error of random rows within %s', (type, bound) => {
    const rows = 8, cols = 1024;
    const x = weights(rows * cols, 7);
    const q = quantizeMatrix(type, x, rows, cols);
    const { rel, maxAbs } = quantError(x, q);
    console.log(`${type}: RMS relative error ${rel.toExponential(2)}, largest error ${maxAbs.toExponential(2)}`);
    expect(rel).toBeLessThan(bound);
    expect(firstNonFinite(q.type, q.data)).toBe(-1);
  });
  it.each(['q4_k', 'q6_k', 'q8_0', 'q4_0'] as const)('%s: zero, constant and one-sign rows', (type) => {
    for (const x of [new Float32Array(256), new Float32Array(256).fill(0.25), new Float32Array(256).fill(-3), weights(256, 3).map(Math.abs)]) {
      const y = dequantize(quantizeMatrix(type, x, 1, 256));
      const { rel } = quantError(x, quantizeMatrix(type, x, 1, 256));
      expect(y.every(Number.isFinite)).toBe(true);
      expect(rel).toBeLessThan(0.15);
    }
  });
});
