/**
 * The subgroup form of the f32 matvec and matmul inner loops, for CPU adapters whose workgroup
 * rows are subgroups (measured per adapter: engine/lockstep.ts).
 *
 * llvmpipe (Mesa 25.0) compiles every load inside a loop, even one whose address is the same in
 * all lanes, into a sequence over the lanes with a branch per lane (the loop's execution mask
 * may have turned lanes off). In a matvec with one invocation per row every lane reads the same
 * input values, so the input loads, not the weights (texel fetches, branch-free), bound it:
 * replacing them with computed values made a 256-token prefill 2.3x faster (lavapipe,
 * stories260K). Here each lane of a subgroup of S loads a DIFFERENT input value (one load
 * instruction for S columns) and the row takes all S from registers with subgroupBroadcast,
 * which llvmpipe compiles to an element extract and a splat. Every lane must be active in the
 * loop (the callers clamp the row instead of skipping it), or a broadcast could read a lane
 * that is off.
 */

import type { WeightType } from '../loader/types.ts';
import { BLOCK_UNIT_TYPES, blockUnitBody } from './dequant.wgsl.ts';

/** Module header of kernels that use the subgroup form. */
export const SUBGROUP_ENABLE = 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);';

/** Subgroup widths the form supports: a block of S columns is S / 4 vec4 words of a row. */
export const SUBGROUP_WIDTHS = [4, 8] as const;

export interface SubgroupDot {
  /** Subgroup width (4 or 8); `sl` (the lane in its subgroup, lid % S) must be in scope. */
  s: number;
  /** WGSL expression of the number of columns (a multiple of 4). */
  cols: string;
  /** WGSL expression of input column `c` (uses `c`; read in every lane, each its own column). */
  x: string;
  /** Each row fed by the same input: its accumulator and the vec4 word `i` of its row (uses `i`). */
  rows: { acc: string; word: (i: string) => string }[];
  /** A loop header over tokens (`for (...)`) around the input loads, or none (one token). */
  tokens?: string;
}

/** `n` columns of a row against a lane register: w(q) names vec4 word q, `x` the register holding column j in lane j. */
function broadcastSum(w: (q: number) => string, x: string, n: number): string {
  return Array.from({ length: n }, (_, j) => `${w(j >> 2)}.${'xyzw'[j & 3]} * subgroupBroadcast(${x}, ${j}u)`).join(' + ');
}

function block(d: SubgroupDot, words: number, first: string, lane: string): string {
  const w = d.rows.map((row, k) => Array.from({ length: words }, (_, q) => `let w${k}_${q} = bitcast<vec4<f32>>(${row.word(`${first} + ${q}u`)});`).join('\n          ')).join('\n          ');
  const body = `let c = ${lane};
            let xl = ${d.x};
            ${d.rows.map((row, k) => `${row.acc} += ${broadcastSum((q) => `w${k}_${q}`, 'xl', 4 * words)};`).join('\n            ')}`;
  return `
          ${w}
          ${d.tokens ? `${d.tokens} {
            ${body}
          }` : `{
            ${body}
          }`}`;
}

/**
 * The rows' dots over columns [0, cols) in blocks of S: per block each lane loads one input value
 * and each row reads S / 4 vec4 words. With S = 8 a width that is 4 mod 8 ends with a half block.
 */
export function subgroupDotWgsl(d: SubgroupDot): string {
  const s = d.s;
  if (!(SUBGROUP_WIDTHS as readonly number[]).includes(s)) throw new Error(`subgroup width ${s}: not one of ${SUBGROUP_WIDTHS.join(', ')}`);
  const full = `
        let nb = (${d.cols}) / ${s}u;
        for (var b = 0u; b < nb; b++) {${block(d, s / 4, `${s / 4}u * b`, `${s}u * b + sl`)}
        }`;
  if (s === 4) return full;
  return `${full}
        if ((${d.cols}) % ${s}u != 0u) {${block(d, 1, `${s / 4}u * nb`, `${s}u * nb + min(sl, 3u)`)}
        }`;
}

/**
 * Widest input (columns) held in registers by the register form: `cols / s` values per lane,
 * unrolled. Wider ones keep the loop form: on the stories15M shape (288 and 768 columns) llvmpipe
 * compiled the unrolled kernels for minutes and they decoded slower (looped:16 52 against 73
 * tokens/s with the loop form).
 */
export const SUBGROUP_REGISTER_COLS = 256;

/** Blocks of an input of `cols` columns (a multiple of 4) for width `s`: [first column, columns]. */
function blocksOf(cols: number, s: number): [number, number][] {
  return Array.from({ length: Math.ceil(cols / s) }, (_, b) => [b * s, Math.min(s, cols - b * s)]);
}

/**
 * The register form, first half: every lane loads its column of each block of the input ONCE
 * (before the loop over rows), into `xr0`, `xr1`, ... `x(c)` is the WGSL of column `c`.
 */
export function subgroupInputWgsl(s: number, cols: number, x: (c: string) => string): string {
  return blocksOf(cols, s)
    .map(([c0, n], b) => `let xr${b} = ${x(n === s ? `${c0}u + sl` : `${c0}u + min(sl, ${n - 1}u)`)};`)
    .join('\n  ');
}

/**
 * The register form, second half: the rows' dots over the input loaded by subgroupInputWgsl,
 * unrolled over its blocks (`word(i)` with `i` a constant expression).
 */
export function subgroupRegisterDotWgsl(s: number, cols: number, rows: SubgroupDot['rows']): string {
  return blocksOf(cols, s)
    .map(([c0, n], b) => {
      const words = n / 4;
      return rows
        .map((row, k) => {
          const w = Array.from({ length: words }, (_, q) => `let w${k}_${b}_${q} = bitcast<vec4<f32>>(${row.word(`${c0 / 4 + q}u`)});`).join(' ');
          return `${w}
        ${row.acc} += ${broadcastSum((q) => `w${k}_${b}_${q}`, `xr${b}`, n)};`;
        })
        .join('\n        ');
    })
    .join('\n        ');
}

/**
 * Probe: in workgroups of `width`, every lane broadcasts from each lane of its subgroup of `s`
 * (`s` consecutive local indices). Passes only if the adapter's subgroups are those rows, with
 * every lane active. 64 workgroups, so the adapter's thread pool is exercised too.
 */
export const subgroupProbeWgsl = (width: number, s: number): string => /* wgsl */ `
${SUBGROUP_ENABLE}
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(${width}) fn probe(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u, @builtin(subgroup_size) size: u32) {
  let v = (wid.x * ${width}u + lid) * 7u + 3u;
  let base = (wid.x * ${width}u + lid) * ${s + 1}u;
${Array.from({ length: s }, (_, j) => `  out[base + ${j}u] = subgroupBroadcast(v, ${j}u);`).join('\n')}
  out[base + ${s}u] = size;
}`;

/** What the probe writes when subgroups of `s` are consecutive local indices. */
export function subgroupProbeExpected(width: number, s: number, groups: number): Uint32Array {
  const out = new Uint32Array(groups * width * (s + 1));
  for (let g = 0; g < groups; g++) {
    for (let l = 0; l < width; l++) {
      const base = (g * width + l) * (s + 1);
      for (let j = 0; j < s; j++) out[base + j] = (g * width + Math.floor(l / s) * s + j) * 7 + 3;
      out[base + s] = s;
    }
  }
  return out;
}

/**
 * The GPU form's lane reduction on subgroup rows of `s` (measured per adapter: engine/lockstep.ts):
 * the `lanes` invocations of a row (`lane` = lid % lanes, a power of two) sum their partials in
 * `v`, and lane 0 ends with the row's total (the only lane that uses it). Instead of a shared-
 * memory tree with log2(lanes) + 2 workgroup barriers per work item: one subgroupAdd when a row
 * is a subgroup, a butterfly of subgroupShuffleXor within the subgroup when rows are narrower,
 * and for wider rows a subgroupAdd per subgroup whose totals lane 0 adds from `red` (2
 * barriers). Every invocation of the workgroup must reach it (callers reduce outside their row
 * checks).
 */
export function subgroupLaneSumWgsl(v: string, lanes: number, s: number): string {
  if (lanes === s) return `${v} = subgroupAdd(${v});`;
  if (lanes < s) {
    const steps: string[] = [];
    for (let o = lanes / 2; o >= 1; o /= 2) steps.push(`${v} += subgroupShuffleXor(${v}, ${o}u);`);
    return steps.join(' ');
  }
  const parts = Array.from({ length: lanes / s }, (_, k) => `red[lid / ${s}u${k ? ` + ${k}u` : ''}]`).join(' + ');
  return `${v} = subgroupAdd(${v});
    workgroupBarrier();
    if (lid % ${s}u == 0u) { red[lid / ${s}u] = ${v}; }
    workgroupBarrier();
    if (lane == 0u) { ${v} = ${parts}; }`;
}

/** Whether kernels with these options share input values over subgroup rows (the CPU form: a width set, one invocation per row). */
export function subgroupSharing(p: { sg?: number; lanes: number }): boolean {
  return (p.sg ?? 0) > 0 && p.lanes === 1;
}

/** Whether the GPU form (`lanes` > 1 per row) reduces with subgroupLaneSumWgsl: a measured width, both powers of two dividing the workgroup. */
export function subgroupLaneSum(p: { sg?: number; lanes: number; wg: number }): boolean {
  const s = p.sg ?? 0;
  const pow2 = (x: number) => x > 0 && (x & (x - 1)) === 0;
  return s > 0 && p.lanes > 1 && pow2(s) && pow2(p.lanes) && p.wg % s === 0 && p.wg % p.lanes === 0;
}

/** Packed encodings with a subgroup unit dot (subgroupUnitDotWgsl): every 32-value block unit. */
export const SUBGROUP_UNIT_TYPES: readonly WeightType[] = BLOCK_UNIT_TYPES;

/**
 * Subgroup form of a 32-value unit dot (`uds_<type>_<buf>(rb, u, xo, sl)`, same result as the
 * `ud_` one of dequant.wgsl.ts): lane `sl` loads staged values xo + s*i + sl, 32 / s loads
 * instead of 32, and every value of the unit comes from subgroupBroadcast.
 */
export function subgroupUnitDotWgsl(type: WeightType, buf: string, s: number): string {
  if (!SUBGROUP_UNIT_TYPES.includes(type)) throw new Error(`no subgroup unit dot for ${type}`);
  const x = (e: number) => `subgroupBroadcast(l${Math.floor(e / s)}, ${e % s}u)`;
  const x4 = (e: number) => `vec4<f32>(${[0, 1, 2, 3].map((d) => x(e + d)).join(', ')})`;
  const loads = Array.from({ length: 32 / s }, (_, i) => `let l${i} = xs[xo + ${i * s}u + sl];`).join(' ');
  return `fn uds_${type}_${buf}(rb: u32, u: u32, xo: u32, sl: u32) -> f32 {
  ${loads}
  ${blockUnitBody(type, (i) => `${buf}_w(${i})`, x4)}
}`;
}
