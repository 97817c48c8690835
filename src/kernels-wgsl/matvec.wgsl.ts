import type { WeightType } from '../loader/types.ts';
import { TYPE_CODE, deviceRowWords, unitElems } from './dequant.wgsl.ts';
import { SUBGROUP_REGISTER_COLS, SUBGROUP_UNIT_TYPES, type SubgroupDot, subgroupDotWgsl, subgroupInputWgsl, subgroupLaneSum, subgroupLaneSumWgsl, subgroupRegisterDotWgsl, subgroupSharing } from './subgroup.wgsl.ts';

/**
 * Role `matvec`: y = W · in over row tiles, with a per-row epilogue (bias, residual, SwiGLU).
 * Instantiated for qkv, wo_residual, gate_up, down_residual and the classifier.
 *
 * A work item is a tile of WG / LANES rows; LANES invocations share one row and stride over its
 * columns (LANES = 1: one invocation per row, best on CPU adapters; 32: coalesced on GPUs). The
 * input vector is staged in workgroup memory (`xs`), in tiles of TILE columns. Weights are read
 * in their packed encoding and decoded in the loop (dequant.wgsl.ts); rows of one output may
 * come from several matrices (q | k | v), and a matrix's encoding may differ between layers
 * (a `switch` on the layer's type code, uniform across the workgroup).
 */
/** Rows [r0, r0 + rows) of a matvec's output read from one matrix region. */
export interface MatSegment {
  r0: number;
  rows: number;
  /** WGSL expression: word offset of the segment's first row (may use `layer`). */
  base: string;
  /** Encodings the segment may have (one unless layers differ). */
  types: WeightType[];
  /** WGSL expression of the type code (TYPE_CODE) when `types` has several. */
  typeOf?: string;
  /** WGSL expression of row r's index in the segment; default r - r0. */
  rel?: string;
}

/** WGSL expression of row r's index in `seg`. */
export const segmentRow = (seg: MatSegment): string => seg.rel ?? (seg.r0 === 0 ? 'r' : `(r - ${seg.r0}u)`);

/** A matrix operand: the storage buffer (WGSL name) and its row segments in order. */
export interface MatOperand {
  buf: string;
  segs: MatSegment[];
}

export interface MatvecParams {
  name: string;
  rows: number;
  cols: number;
  input: string; // act offset constant of the input vector
  a: MatOperand;
  /** A second matrix of the same shape multiplied by the same input (gate/up): `a1`. */
  b?: MatOperand;
  /** WGSL statements run by one invocation per row; `r` is the row, `a0` (`a1`) the dot products. */
  epilogue: string;
  lanes: number;
  wg: number;
  tile: number;
  /** f32 weights read as vec4 words (16-byte loads; every f32 row offset and length a multiple of 4). */
  vec4?: boolean;
  /**
   * Staged input padded with one word after every 32 (index c + c/32): lanes that walk different
   * 32-value units of a packed row then read different shared-memory banks (GPUs).
   */
  pad?: boolean;
  /**
   * CPU adapters: f32 rows read the input straight from the activation buffer instead of staging
   * it in workgroup memory (one copy less; inside a loop llvmpipe loads either with a branch per
   * lane). With `sg` the subgroup form loads it once per stage into registers. Packed rows still
   * stage it (the unit dots read `xs`).
   */
  direct?: boolean;
  /**
   * Subgroup width to share input values over (kernels-wgsl/subgroup.wgsl.ts), 0 for none. Used
   * by the direct vec4 form when every segment starts at a multiple of it (the lanes of a
   * subgroup then stay in one segment).
   */
  sg?: number;
}

/** Offset of staged column `c` (a WGSL expression) in its staged row: a word of padding after every 32 with `pad`. */
export const stagedColumn = (pad: boolean | undefined, c: string): string => (pad ? `(${c}) + ((${c}) >> 5u)` : c);

/** Index of staged column `c` (a WGSL expression) in xs. */
const xsAt = (p: MatvecParams, c: string): string => stagedColumn(p.pad, c);

/**
 * WGSL statements summing the `lanes` partials of a row in `v` (lane 0 ends with the total):
 * nothing with one lane, subgroup operations where the subgroup width allows
 * (subgroupLaneSumWgsl), else a tree in `red` (log2(lanes) + 2 workgroup barriers). Every
 * invocation of the workgroup runs it. Shared by the matvec and the batched matmul.
 */
export function rowLaneSumWgsl(p: { sg?: number; lanes: number; wg: number }, v: string): string {
  if (p.lanes === 1) return '';
  if (subgroupLaneSum(p)) return subgroupLaneSumWgsl(v, p.lanes, p.sg!);
  return `workgroupBarrier();
    red[lid] = ${v};
    workgroupBarrier();
    for (var s = ${p.lanes / 2}u; s > 0u; s = s / 2u) {
      if (lane < s) { red[lid] = red[lid] + red[lid + s]; }
      workgroupBarrier();
    }
    ${v} = red[lid];`;
}

/** Name of the unit-dot function of `type` rows of width `cols` in buffer `buf`. */
export const unitDotName = (type: WeightType, cols: number, buf: string): string => `ud_${type}x${unitElems(type, cols)}_${buf}`;

/** The dot of row `r`'s columns [c0, c0 + len) with xs, for one encoding, added to `acc`. */
function dotOf(p: MatvecParams, buf: string, seg: MatSegment, type: WeightType, acc: string, c0: string, len: string): string {
  const rel = segmentRow(seg);
  if (type === 'f32') {
    if (direct(p)) {
      const x = (i: string) => `ld(${p.input} + ${i})`;
      if (subgroupForm(p)) {
        return `
        let row = (${seg.base} + ${rel} * ${p.cols}u) >> 2u;
        ${directSubgroupDot(p, [{ acc, word: (i) => `${buf}_v(row + ${i})` }])}`;
      }
      if (p.vec4) {
        return `
        let row = (${seg.base} + ${rel} * ${p.cols}u) >> 2u;
        for (var c = lane; c < ${p.cols / 4}u; c += ${p.lanes}u) {
          let i = 4u * c;
          ${acc} += dot(bitcast<vec4<f32>>(${buf}_v(row + c)), ${directInput4(p)});
        }`;
      }
      return `
        let row = ${seg.base} + ${rel} * ${p.cols}u;
        for (var c = lane; c < ${p.cols}u; c += ${p.lanes}u) { ${acc} += bitcast<f32>(${buf}_w(row + c)) * ${x('c')}; }`;
    }
    if (p.vec4) {
      return `
        let row = (${seg.base} + ${rel} * ${p.cols}u + ${c0}) >> 2u;
        let n4 = (${len}) / 4u;
        for (var c = lane; c < n4; c += ${p.lanes}u) {
          let xb = ${p.pad ? '4u * c + (c >> 3u)' : '4u * c'};
          ${acc} += dot(bitcast<vec4<f32>>(${buf}_v(row + c)), vec4<f32>(xs[xb], xs[xb + 1u], xs[xb + 2u], xs[xb + 3u]));
        }`;
    }
    return `
        let row = ${seg.base} + ${rel} * ${p.cols}u + ${c0};
        for (var c = lane; c < ${len}; c += ${p.lanes}u) { ${acc} += bitcast<f32>(${buf}_w(row + c)) * xs[${xsAt(p, 'c')}]; }`;
  }
  return `
        let rb = ${seg.base} + ${rel} * ${deviceRowWords(type, p.cols)}u;${unitLoop(p, type, c0, len, [{ acc, buf, row: 'rb' }])}`;
}

/**
 * The loop over a lane's units of columns [c0, c0 + len) of packed `type` rows, adding each
 * row's unit dot with the staged input to its accumulator (`row`: the WGSL of its first word).
 */
function unitLoop(p: MatvecParams, type: WeightType, c0: string, len: string, rows: { acc: string; buf: string; row: string }[]): string {
  const ue = unitElems(type, p.cols);
  const xo = xsAt(p, `(u - u0) * ${ue}u`);
  const call = (buf: string, row: string) =>
    subgroupUnit(p, type) ? `s${unitDotName(type, p.cols, buf)}(${row}, u, ${xo}, sl)` : `${unitDotName(type, p.cols, buf)}(${row}, u, ${xo})`;
  return `
        let u0 = (${c0}) / ${ue}u;
        let u1 = (${c0} + ${len}) / ${ue}u;
        for (var u = u0 + lane; u < u1; u += ${p.lanes}u) {${rows.map((r) => ` ${r.acc} += ${call(r.buf, r.row)};`).join('')} }`;
}

/** The input values 4c .. 4c + 3 read straight from `act` (the direct form; `i` = 4c in scope). */
const directInput4 = (p: MatvecParams): string =>
  `vec4<f32>(${[0, 1, 2, 3].map((d) => `ld(${p.input} + i${d ? ` + ${d}u` : ''})`).join(', ')})`;

/**
 * gate/up in the CPU form (both matrices one f32 segment, vec4 words, the input from storage):
 * ONE column loop feeding both dots, so each input value is loaded once for the two rows.
 * Measured with the device-model stage microbenchmark on lavapipe (stories260K): gate_up took
 * twice the time per weight of the other matvecs as two loops.
 */
function directPair(p: MatvecParams): string | undefined {
  const b = p.b;
  if (!b || !direct(p) || !p.vec4 || p.lanes !== 1 || p.a.segs.length !== 1 || b.segs.length !== 1) return undefined;
  const [sa, sb] = [p.a.segs[0]!, b.segs[0]!];
  if (sa.types.length !== 1 || sb.types.length !== 1 || sa.r0 !== 0 || sb.r0 !== 0) return undefined;
  if (subgroupForm(p)) {
    return `
        let ra = (${sa.base} + r * ${p.cols}u) >> 2u;
        let rb = (${sb.base} + r * ${p.cols}u) >> 2u;
        ${directSubgroupDot(p, [{ acc: 'a0', word: (i) => `${p.a.buf}_v(ra + ${i})` }, { acc: 'a1', word: (i) => `${b.buf}_v(rb + ${i})` }])}`;
  }
  return `
        let ra = (${sa.base} + r * ${p.cols}u) >> 2u;
        let rb = (${sb.base} + r * ${p.cols}u) >> 2u;
        for (var c = 0u; c < ${p.cols / 4}u; c++) {
          let i = 4u * c;
          let xv = ${directInput4(p)};
          a0 += dot(bitcast<vec4<f32>>(${p.a.buf}_v(ra + c)), xv);
          a1 += dot(bitcast<vec4<f32>>(${b.buf}_v(rb + c)), xv);
        }`;
}

/**
 * gate/up with both matrices in one packed encoding (one segment each), in the GPU form (several
 * lanes a row): ONE loop over the row's units feeding both dots, so that each unit's input values
 * are read once for the two rows and both matrices' loads are in flight together (two loops read
 * the staged input twice). Not in the CPU form: llvmpipe does not share the two unit dots' input
 * reads, and Q8_0 gate_up took 140 us a call paired against 130 in two loops (stories15M shape).
 */
function packedPair(p: MatvecParams, c0: string, len: string): string | undefined {
  const b = p.b;
  if (!b || p.lanes === 1 || p.a.segs.length !== 1 || b.segs.length !== 1) return undefined;
  const [sa, sb] = [p.a.segs[0]!, b.segs[0]!];
  const type = sa.types[0]!;
  if (sa.types.length !== 1 || sb.types.length !== 1 || sb.types[0] !== type || type === 'f32') return undefined;
  const words = deviceRowWords(type, p.cols);
  return `
        let rba = ${sa.base} + ${segmentRow(sa)} * ${words}u;
        let rbb = ${sb.base} + ${segmentRow(sb)} * ${words}u;${unitLoop(p, type, c0, len, [
          { acc: 'a0', buf: p.a.buf, row: 'rba' },
          { acc: 'a1', buf: b.buf, row: 'rbb' },
        ])}`;
}

/**
 * Whether the f32 vec4 rows use the subgroup form: a width is set, one invocation per row, and
 * every segment starts on a subgroup boundary. The rows are then clamped, not skipped, so that
 * every lane stays active (matvecWgsl, matmulWgsl).
 */
export function subgroupForm(p: SubgroupRows & { vec4?: boolean }): boolean {
  return !!p.vec4 && subgroupRows(p);
}

type SubgroupRows = { sg?: number; lanes: number; wg: number; a: MatOperand; b?: MatOperand; pad?: boolean };

/** A subgroup width is set, one invocation per row, every segment on a subgroup boundary, no padded staging. */
export function subgroupRows(p: SubgroupRows): boolean {
  if (!subgroupSharing(p) || p.wg % p.sg! !== 0 || p.pad) return false;
  return [p.a, ...(p.b ? [p.b] : [])].every((op) => op.segs.every((s) => s.r0 % p.sg! === 0));
}

/** Whether `type` rows use the subgroup unit dot (subgroup.wgsl.ts, SUBGROUP_UNIT_TYPES). */
export function subgroupUnit(p: SubgroupRows, type: WeightType): boolean {
  return SUBGROUP_UNIT_TYPES.includes(type) && subgroupRows(p);
}

/** Whether any row of the stage uses a subgroup form, so that its rows are clamped, not skipped (every lane active). */
export function clampsRows(p: SubgroupRows & { vec4?: boolean }, f32Subgroup: boolean): boolean {
  const types = [p.a, ...(p.b ? [p.b] : [])].flatMap((op) => op.segs.flatMap((s) => s.types));
  return (f32Subgroup && types.includes('f32')) || types.some((t) => subgroupUnit(p, t));
}

/**
 * The subgroup form with the input in registers: read from storage once per stage, before the
 * loop over rows (direct f32 rows, up to SUBGROUP_REGISTER_COLS columns).
 */
function registerInput(p: MatvecParams): boolean {
  return direct(p) && subgroupForm(p) && p.cols <= SUBGROUP_REGISTER_COLS;
}

/** The direct f32 rows' dots in the subgroup form: from the registers of registerInput, else loading the input block by block. */
function directSubgroupDot(p: MatvecParams, rows: SubgroupDot['rows']): string {
  return registerInput(p) ? subgroupRegisterDotWgsl(p.sg!, p.cols, rows) : subgroupDotWgsl({ s: p.sg!, cols: `${p.cols}u`, x: `ld(${p.input} + c)`, rows });
}

/** Whether the input is read from storage, not staged (every row of the stage in f32). */
function direct(p: MatvecParams): boolean {
  const ops = p.b ? [p.a, p.b] : [p.a];
  return !!p.direct && ops.every((op) => op.segs.every((s) => s.types.every((t) => t === 'f32')));
}

/**
 * Row r's dot over one operand, for the matvec and the batched matmul alike: picks the segment
 * by row and the encoding by layer (a switch on the layer's type code); `dot` writes one
 * segment's loop in one encoding.
 */
export function operandDotWgsl(op: MatOperand, dot: (seg: MatSegment, type: WeightType) => string): string {
  const type = op.segs[0]!.types[0]!;
  if (op.segs.length > 1 && op.segs.every((s) => s.types.length === 1 && s.types[0] === type)) {
    // One encoding: the row's segment picked by selects and ONE loop, not a branch per segment
    // (SwiftShader ran every branch's loop: qkv took twice the time per weight of gate_up).
    const last = op.segs[op.segs.length - 1]!;
    const pick = (v: (s: MatSegment) => string) =>
      op.segs.slice(0, -1).reduceRight((acc, s) => `select(${acc}, ${v(s)}, r < ${s.r0 + s.rows}u)`, v(last));
    return `{
        let seg_base = ${pick((s) => `(${s.base})`)};
        let seg_row = ${pick(segmentRow)};${dot({ r0: 0, rows: last.r0 + last.rows, base: 'seg_base', rel: 'seg_row', types: [type] }, type)}
      }`;
  }
  const segCode = (seg: MatSegment): string => {
    if (seg.types.length === 1) return `{${dot(seg, seg.types[0])}
      }`;
    const cases = seg.types.map((t) => `case ${TYPE_CODE[t]}u: {${dot(seg, t)}
        }`).join('\n        ');
    return `{
        switch (${seg.typeOf}) {
        ${cases}
        default: {}
        }
      }`;
  };
  return op.segs
    .map((seg, i) => (i === op.segs.length - 1 ? segCode(seg) : `if (r < ${seg.r0 + seg.rows}u) ${segCode(seg)}`))
    .join(' else ');
}

/** Row r's dot over one operand of the matvec, columns [c0, c0 + len). */
function operandDot(p: MatvecParams, op: MatOperand, acc: string, c0: string, len: string): string {
  return operandDotWgsl(op, (seg, t) => dotOf(p, op.buf, seg, t, acc, c0, len));
}

export function matvecWgsl(p: MatvecParams): string {
  const rpi = p.wg / p.lanes;
  const items = Math.ceil(p.rows / rpi);
  const staged = !direct(p);
  const single = !staged || p.cols <= p.tile; // the whole input fits the tile: stage it once
  const dual = p.b !== undefined;
  const load = (c0: string, len: string) => !staged ? '' : `
    workgroupBarrier();
    for (var c = lid; c < ${len}; c += WG) { xs[${xsAt(p, 'c')}] = ld(${p.input} + ${c0} + c); }
    workgroupBarrier();`;
  // The subgroup form runs the last rows' lanes on a copy of the last row (all lanes active).
  const dot = (c0: string, len: string) => `
      ${clampsRows(p, direct(p) && subgroupForm(p)) ? `{
      let r = min(r, ${p.rows - 1}u);` : `if (r < ${p.rows}u) {`}
      ${directPair(p) ?? packedPair(p, c0, len) ?? `${operandDot(p, p.a, 'a0', c0, len)}
      ${dual ? operandDot(p, p.b!, 'a1', c0, len) : ''}`}
      }`;
  const reduce = (v: string) => (p.lanes === 1 ? '' : `
    ${rowLaneSumWgsl(p, v)}`);
  return /* wgsl */ `
fn s_${p.name}(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let lane = lid % ${p.lanes}u;
  let rl = lid / ${p.lanes}u;${p.sg ? `
  let sl = lid % ${p.sg}u;` : ''}
  ${single ? load('0u', `${p.cols}u`) : ''}
  ${registerInput(p) ? subgroupInputWgsl(p.sg!, p.cols, (c) => `ld(${p.input} + ${c})`) : ''}
  for (var item = t; item < ${items}u; item += n) {
    let r = item * ${rpi}u + rl;
    var a0 = 0.0;
    ${dual ? 'var a1 = 0.0;' : ''}
    ${
      single
        ? dot('0u', `${p.cols}u`)
        : `for (var c0 = 0u; c0 < ${p.cols}u; c0 += TILE) {
      let len = min(TILE, ${p.cols}u - c0);
      ${load('c0', 'len')}
      ${dot('c0', 'len')}
    }`
    }
    ${reduce('a0')}
    ${dual ? reduce('a1') : ''}
    if (lane == 0u && r < ${p.rows}u) {
      ${p.epilogue}
    }
  }
}
`;
}

/**
 * Work items a GPU-form matvec aims for (about one per multiprocessor of a large GPU: the fused
 * kernels run about one workgroup per multiprocessor, 132 on an H200).
 */
export const MATVEC_ITEMS = 128;

/**
 * Lanes per row of a rows x cols matvec: the kernel's, doubled while the matvec would have fewer
 * than MATVEC_ITEMS work items and every lane keeps at least one 32-value unit of its row. With
 * 1024-invocation workgroups and 32 lanes, a 2048-row matvec (Llama-3.2-1B's wo and down) made 64
 * work items and left half of an H200's multiprocessors idle. One invocation per row (the CPU
 * form) stays one.
 */
export function matvecLanes(kernel: { wg: number; lanes: number }, rows: number, cols: number): number {
  let lanes = kernel.lanes;
  if (lanes <= 1) return lanes;
  while (lanes < kernel.wg && matvecItems(rows, lanes, kernel.wg) < MATVEC_ITEMS && 2 * lanes * 32 <= cols) lanes *= 2;
  return lanes;
}

/** Work items of a matvec (for per-op dispatch sizes). */
export function matvecItems(rows: number, lanes: number, wg: number): number {
  return Math.ceil(rows / (wg / lanes));
}
