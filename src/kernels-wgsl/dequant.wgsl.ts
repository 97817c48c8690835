/**
 * Packed weights on the device, and their decoding inside the kernels.
 *
 * Every weight buffer is an array of u32 words. A matrix keeps its file's encoding row by row
 * (src/loader/quant.ts); a block whose size is not a multiple of 4 bytes is padded so that each
 * block starts on a word:
 *   f32   1 value / word            f16, bf16  2 values / word (rows of an even width)
 *   q8_0  [d, pad | qs 8 words]      9 words / 32     q4_0  [d, pad | qs 4 words]     5 words / 32
 *   q4_1  [d, m | qs 4 words]        5 words / 32     q5_0  [d, pad | qh | qs 4 w]    6 words / 32
 *   q5_1  [d, m | qh | qs 4 words]   6 words / 32
 *   q4_k  as in the file            36 words / 256    q5_k  as in the file           44 words / 256
 *   q6_k  [file bytes | pad 2]      53 words / 256
 * The matvec walks a row in UNITS (32 values of a quantized row, 8 or 2 of a 16-bit one), one
 * unit per lane iteration, and accumulates in f32: `ud_<type>_<buf>(rowWord, unit, xsOffset)`
 * returns the dot of one unit with the staged input `xs`. `ev_<type>_<buf>(rowWord, col)` reads
 * one value (the embedding row lookup).
 */
import type { WeightType } from '../loader/types.ts';

export interface DeviceBlock {
  /** Values per block. */
  elems: number;
  /** Words per block on the device. */
  words: number;
  /** Zero bytes inserted after the block's first two bytes (its f16 scale) to align the rest. */
  headPad: number;
}

export const DEVICE_BLOCKS: Record<WeightType, DeviceBlock> = {
  f32: { elems: 1, words: 1, headPad: 0 },
  f16: { elems: 2, words: 1, headPad: 0 },
  bf16: { elems: 2, words: 1, headPad: 0 },
  q8_0: { elems: 32, words: 9, headPad: 2 },
  q4_0: { elems: 32, words: 5, headPad: 2 },
  q4_1: { elems: 32, words: 5, headPad: 0 },
  q5_0: { elems: 32, words: 6, headPad: 2 },
  q5_1: { elems: 32, words: 6, headPad: 0 },
  q4_k: { elems: 256, words: 36, headPad: 0 },
  q5_k: { elems: 256, words: 44, headPad: 0 },
  q6_k: { elems: 256, words: 53, headPad: 0 },
};

/** Words of one row of `cols` values of `type` on the device. */
export function deviceRowWords(type: WeightType, cols: number): number {
  const b = DEVICE_BLOCKS[type];
  if (cols % b.elems !== 0) throw new Error(`${type} rows need a multiple of ${b.elems} values, not ${cols}`);
  return (cols / b.elems) * b.words;
}

/** Values per matvec unit of a row of `cols` values (f32 rows are walked by the plain loop). */
export function unitElems(type: WeightType, cols: number): number {
  if (type === 'f32') return 1;
  if (type === 'f16' || type === 'bf16') return cols % 8 === 0 ? 8 : 2;
  return 32;
}

/** Numeric codes of the types (for per-layer type tables in WGSL). */
export const TYPE_CODE: Record<WeightType, number> = {
  f32: 0, f16: 1, bf16: 2, q8_0: 3, q4_0: 4, q4_1: 5, q5_0: 6, q4_k: 7, q5_k: 8, q6_k: 9, q5_1: 10,
};

/**
 * Helpers shared by every decoder (buffer independent). `style` picks how a signed byte becomes a
 * float: on GPUs without a conversion (qf4), on CPU adapters by one (x86 converts at full rate;
 * on lavapipe, stories15M shape, the conversion-free q8_0 classifier was no faster: 3337 us a call
 * against 3201).
 */
export function dequantHelpers(style: 'cpu' | 'gpu'): string {
  const i8x4 =
    style === 'gpu'
      ? '// The four signed bytes of w as floats: byte ^ 0x80 is the byte + 128 (0..255).\nfn i8x4(w: u32) -> vec4<f32> { return qf4(bytes4(w ^ 0x80808080u), 8388736.0); }'
      : `fn i8x4(w: u32) -> vec4<f32> {
  return vec4<f32>(vec4<i32>(bitcast<i32>(w << 24u), bitcast<i32>(w << 16u), bitcast<i32>(w << 8u), bitcast<i32>(w)) >> vec4<u32>(24u));
}`;
  return `${DEQUANT_COMMON}${i8x4}\n`;
}

const DEQUANT_COMMON = /* wgsl */ `
fn x4(o: u32) -> vec4<f32> { return vec4<f32>(xs[o], xs[o + 1u], xs[o + 2u], xs[o + 3u]); }
fn bytes4(w: u32) -> vec4<u32> { return vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(255u); }
fn nib4(w: u32) -> vec4<u32> { return vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(15u); }
// q - (c - 2^23) for integers q < 2^23, exactly and without an integer-to-float conversion: the
// bits 2^23 | q are the float 2^23 + q (c is 2^23 plus the encoding's offset). Conversions run at
// a quarter of the float rate on NVIDIA multiprocessors; an OR and a subtraction at full rate.
fn qf4(q: vec4<u32>, c: f32) -> vec4<f32> { return bitcast<vec4<f32>>(q | vec4<u32>(0x4b000000u)) - vec4<f32>(c); }
fn lo16(w: u32) -> f32 { return unpack2x16float(w).x; }
fn bf2(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }
// Byte i (0..11) of the 12 packed K-quant scale bytes held in words s.x, s.y, s.z.
fn kb(s: vec3<u32>, i: u32) -> u32 { return (s[i >> 2u] >> (8u * (i & 3u))) & 255u; }
// Scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block (ggml's get_scale_min_k4).
fn k4sm(s: vec3<u32>, j: u32) -> vec2<f32> {
  if (j < 4u) { return vec2<f32>(f32(kb(s, j) & 63u), f32(kb(s, j + 4u) & 63u)); }
  return vec2<f32>(f32((kb(s, j + 4u) & 15u) | ((kb(s, j - 4u) >> 6u) << 4u)), f32((kb(s, j + 4u) >> 4u) | ((kb(s, j) >> 6u) << 4u)));
}
fn sx8(w: u32) -> f32 { return f32(bitcast<i32>(w << 24u) >> 24u); }
`;

/** WGSL of the unit dot `ud_<type>_<buf>` for one weight buffer (W(i) = word i of it). */
export function unitDotWgsl(type: WeightType, buf: string, ue: number): string {
  const W = (i: string) => `${buf}_w(${i})`;
  const sig = `fn ud_${type}_${buf}(rb: u32, u: u32, xo: u32) -> f32`;
  if (type === 'f32') throw new Error('f32 rows use the plain matvec loop');
  if (type === 'f16' || type === 'bf16') {
    const pair = type === 'f16' ? 'unpack2x16float' : 'bf2';
    if (ue === 2) return `${sig} { let v = ${pair}(${W('rb + u')}); return v.x * xs[xo] + v.y * xs[xo + 1u]; }`;
    return `${sig} {
  let b = rb + u * 4u;
  let a = vec4<f32>(${pair}(${W('b')}), ${pair}(${W('b + 1u')}));
  let c = vec4<f32>(${pair}(${W('b + 2u')}), ${pair}(${W('b + 3u')}));
  return dot(a, x4(xo)) + dot(c, x4(xo + 4u));
}`;
  }
  return `${sig} {
  ${blockUnitBody(type, W, (e) => `x4(xo + ${e}u)`)}
}`;
}

/** Encodings whose unit is 32 values of a block (blockUnitBody). */
export const BLOCK_UNIT_TYPES: readonly WeightType[] = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k'];

/**
 * Statements of the dot of 32-value unit `u` of the block row at word `rb` with 32 input values,
 * ending in `return`: `X4(e)` is the WGSL of input values e .. e + 3 of the unit. Unrolled, one
 * block of statements per input vec4, each read where it is used (llvmpipe spilled registers when
 * the eight were read first: q8_0 rows 1.3x slower). The unit dot from staged memory
 * (unitDotWgsl) and the subgroup one (subgroup.wgsl.ts) are this body with two ways of reading
 * the input.
 */
export function blockUnitBody(type: WeightType, W: (i: string) => string, X4: (e: number) => string): string {
  const each = (ks: number[], body: (k: number) => string) => ks.map((k) => `{ ${body(k)} }`).join('\n  ');
  const k8 = [0, 1, 2, 3, 4, 5, 6, 7];
  const k4 = [0, 1, 2, 3];
  switch (type) {
    case 'q8_0':
      return `let b = rb + u * 9u;
  var s = 0.0;
  ${each(k8, (k) => `s += dot(i8x4(${W(`b + ${1 + k}u`)}), ${X4(4 * k)});`)}
  return lo16(${W('b')}) * s;`;
    case 'q4_0':
    case 'q4_1':
    case 'q5_0':
    case 'q5_1': {
      const one = type === 'q4_1' || type === 'q5_1';
      const five = type === 'q5_0' || type === 'q5_1';
      const c = one ? '8388608.0' : five ? '8388624.0' : '8388616.0';
      const hi = (bit: number) => (five ? ` | (((vec4<u32>(qh) >> vec4<u32>(${bit}u, ${bit + 1}u, ${bit + 2}u, ${bit + 3}u)) & vec4<u32>(1u)) << vec4<u32>(4u))` : '');
      return `let b = rb + u * ${five ? 6 : 5}u;${five ? `\n  let qh = ${W('b + 1u')};` : ''}
  var s = 0.0;${one ? '\n  var tv = vec4<f32>(0.0);' : ''}
  ${each(k4, (k) => `let w = ${W(`b + ${(five ? 2 : 1) + k}u`)}; let xa = ${X4(4 * k)}; let xb = ${X4(16 + 4 * k)};
    s += dot(qf4(nib4(w)${hi(4 * k)}, ${c}), xa) + dot(qf4(nib4(w >> 4u)${hi(16 + 4 * k)}, ${c}), xb);${one ? ' tv += xa + xb;' : ''}`)}
  ${one ? `let dm = unpack2x16float(${W('b')});
  return dm.x * s + dm.y * dot(tv, vec4<f32>(1.0));` : `return lo16(${W('b')}) * s;`}`;
    }
    case 'q4_k':
    case 'q5_k': {
      const five = type === 'q5_k';
      return `let b = rb + (u >> 3u) * ${five ? 44 : 36}u;
  let j = u & 7u;
  let dm = unpack2x16float(${W('b')});
  let sm = k4sm(vec3<u32>(${W('b + 1u')}, ${W('b + 2u')}, ${W('b + 3u')}), j);
  let qb = b + ${five ? 12 : 4}u + 8u * (j >> 1u);
  let sh = 4u * (j & 1u);
  var s = 0.0;
  var tv = vec4<f32>(0.0);
  ${each(k8, (k) => `let xv = ${X4(4 * k)}; s += dot(qf4(nib4(${W(`qb + ${k}u`)} >> sh)${five ? ` | (((bytes4(${W(`b + ${4 + k}u`)}) >> vec4<u32>(j)) & vec4<u32>(1u)) << vec4<u32>(4u))` : ''}, 8388608.0), xv); tv += xv;`)}
  return dm.x * sm.x * s - dm.y * sm.y * dot(tv, vec4<f32>(1.0));`;
    }
    case 'q6_k':
      return `let b = rb + (u >> 3u) * 53u;
  let n = (u & 7u) >> 2u;
  let g = u & 3u;
  let qlb = b + 16u * n + 8u * (g & 1u);
  let qhb = b + 32u + 8u * n;
  let si = 8u * n + 2u * g;
  let sw = ${W('b + 48u + (si >> 2u)')} >> (8u * (si & 3u));
  let lsh = 4u * (g >> 1u);
  let hsh = 2u * g;
  var s0 = 0.0;
  var s1 = 0.0;
  ${each(k8, (k) => `s${k < 4 ? 0 : 1} += dot(qf4(nib4(${W(`qlb + ${k}u`)} >> lsh) | ((bytes4(${W(`qhb + ${k}u`)} >> hsh) & vec4<u32>(3u)) << vec4<u32>(4u)), 8388640.0), ${X4(4 * k)});`)}
  return lo16(${W('b + 52u')}) * (sx8(sw) * s0 + sx8(sw >> 8u) * s1);`;
    default:
      throw new Error(`no unit dot for ${type}`);
  }
}

/** WGSL of the single-value read `ev_<type>_<buf>(rowWord, col)`. */
export function elemWgsl(type: WeightType, buf: string): string {
  const W = (i: string) => `${buf}_w(${i})`;
  const sig = `fn ev_${type}_${buf}(rb: u32, i: u32) -> f32`;
  switch (type) {
    case 'f32':
      return `${sig} { return bitcast<f32>(${W('rb + i')}); }`;
    case 'f16':
      return `${sig} { return unpack2x16float(${W('rb + (i >> 1u)')})[i & 1u]; }`;
    case 'bf16':
      return `${sig} { return bf2(${W('rb + (i >> 1u)')})[i & 1u]; }`;
    case 'q8_0':
      return `${sig} {
  let b = rb + (i >> 5u) * 9u;
  let j = i & 31u;
  return lo16(${W('b')}) * sx8(${W('b + 1u + (j >> 2u)')} >> (8u * (j & 3u)));
}`;
    case 'q4_0':
    case 'q4_1':
    case 'q5_0':
    case 'q5_1': {
      const five = type === 'q5_0' || type === 'q5_1';
      const words = five ? 6 : 5;
      const qs = five ? 2 : 1;
      const q = `(${W(`b + ${qs}u + ((j & 15u) >> 2u)`)} >> (8u * (j & 3u) + 4u * (j >> 4u))) & 15u`;
      const body =
        type === 'q4_0'
          ? `return lo16(${W('b')}) * (f32(${q}) - 8.0);`
          : type === 'q4_1'
            ? `let dm = unpack2x16float(${W('b')}); return dm.x * f32(${q}) + dm.y;`
            : type === 'q5_0'
              ? `let h = ((${W('b + 1u')} >> j) & 1u) << 4u; return lo16(${W('b')}) * (f32((${q}) | h) - 16.0);`
              : `let h = ((${W('b + 1u')} >> j) & 1u) << 4u; let dm = unpack2x16float(${W('b')}); return dm.x * f32((${q}) | h) + dm.y;`;
      return `${sig} {
  let b = rb + (i >> 5u) * ${words}u;
  let j = i & 31u;
  ${body}
}`;
    }
    case 'q4_k':
    case 'q5_k': {
      const five = type === 'q5_k';
      return `${sig} {
  let b = rb + (i >> 8u) * ${five ? 44 : 36}u;
  let e = i & 255u;
  let j = e >> 5u;
  let l = e & 31u;
  let dm = unpack2x16float(${W('b')});
  let sm = k4sm(vec3<u32>(${W('b + 1u')}, ${W('b + 2u')}, ${W('b + 3u')}), j);
  var q = (${W(`b + ${five ? 12 : 4}u + 8u * (j >> 1u) + (l >> 2u)`)} >> (8u * (l & 3u) + 4u * (j & 1u))) & 15u;
  ${five ? `q = q | (((${W('b + 4u + (l >> 2u)')} >> (8u * (l & 3u) + j)) & 1u) << 4u);` : ''}
  return dm.x * sm.x * f32(q) - dm.y * sm.y;
}`;
    }
    case 'q6_k':
      return `${sig} {
  let b = rb + (i >> 8u) * 53u;
  let e = i & 255u;
  let n = e >> 7u;
  let g = (e & 127u) >> 5u;
  let l = e & 31u;
  let qlb = 64u * n + 32u * (g & 1u) + l;
  let qhb = 128u + 32u * n + l;
  let si = 192u + 8u * n + (l >> 4u) + 2u * g;
  let ql = (${W('b + (qlb >> 2u)')} >> (8u * (qlb & 3u) + 4u * (g >> 1u))) & 15u;
  let qh = (${W('b + (qhb >> 2u)')} >> (8u * (qhb & 3u) + 2u * g)) & 3u;
  let sc = sx8(${W('b + (si >> 2u)')} >> (8u * (si & 3u)));
  return lo16(${W('b + 52u')}) * sc * (f32(ql | (qh << 4u)) - 32.0);
}`;
  }
}
