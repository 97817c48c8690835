import { deviceRowWords, unitElems } from './dequant.wgsl.ts';
import { type MatOperand, type MatSegment, clampsRows, operandDotWgsl, rowLaneSumWgsl, segmentRow, stagedColumn, subgroupForm, subgroupUnit, unitDotName } from './matvec.wgsl.ts';
import { subgroupDotWgsl } from './subgroup.wgsl.ts';
import type { WeightType } from '../loader/types.ts';

/**
 * Role `matmul` (the batched matvec): Y[t] = W · X[t] for the step.n_tokens (<= CHUNK) tokens of
 * a chunk, every weight word read ONCE for all of them, with a per-row, per-token epilogue.
 * Instantiated for qkv, wo_residual, gate_up, down_residual and the classifier of the batched
 * forward. Same work split as the matvec (a work item is a tile of WG / LANES rows; LANES
 * invocations share a row); the T input vectors are staged in workgroup memory as
 * xs[t * BTS + c] (BTS = BT, or BT + BT / 32 padded), BT columns of each per pass. Packed rows are decoded by the matvec's unit
 * dots (dequant.wgsl.ts), called once per token with that token's xs offset.
 */
export interface MatmulParams {
  name: string;
  rows: number;
  cols: number;
  /** WGSL expression of token tt's input vector start in `act` (uses `tt`). */
  input: string;
  a: MatOperand;
  /** A second matrix of the same shape on the same input (gate/up): `v1`. */
  b?: MatOperand;
  /** WGSL statements run once per row and token: `r` the row, `tt` the token, `v0` (`v1`) the dots. */
  epilogue: string;
  lanes: number;
  wg: number;
  /** Columns of each token staged per pass (BT). */
  tileCols: number;
  /** Only the chunk's last step.forced tokens (the classifier: the logits rows asked for). */
  forcedOnly?: boolean;
  /** f32 weights read as vec4 words (`<buf>_v`; every row offset, width and BT a multiple of 4). */
  vec4?: boolean;
  /** Subgroup width to share input values over (subgroup.wgsl.ts, matvec.wgsl.ts subgroupForm), 0 for none. */
  sg?: number;
  /** Tokens of a full chunk (the layout's CHUNK). */
  chunk: number;
  /**
   * Staged rows padded by a word per 32 columns (the layout's BTS = BT + BT / 32 words a token):
   * lanes on different 32-value units read different shared-memory banks (the GPU style).
   */
  pad?: boolean;
}

/** Index in xs of token `tt`'s staged column `c` (WGSL expressions). */
const xsAt = (p: MatmulParams, tt: string, c: string): string => `${tt} * BTS + ${stagedColumn(p.pad, c)}`;

/** Subgroup blocks of a row (the subgroup form's input values per lane and token). */
const blocks = (p: MatmulParams): number => Math.ceil(p.cols / p.sg!);

/** Most input values per lane the register tile holds (CHUNK x blocks). */
export const REGISTER_TILE_MAX = 1024;

/**
 * The subgroup form with whole rows staged: a full chunk's inputs are copied once per stage from
 * xs to a private array (each lane its column of every block, per token), which the row loop
 * reads instead of xs: llvmpipe reads a private array without the per-lane branches of a
 * workgroup-memory load (lavapipe, stories260K, 256-token prefill: 1.1-1.3x).
 */
function registerTile(p: MatmulParams): boolean {
  return p.vec4 === true && subgroupForm(p) && p.cols <= p.tileCols && !p.forcedOnly && p.chunk * blocks(p) <= REGISTER_TILE_MAX;
}

function dotOf(p: MatmulParams, buf: string, seg: MatSegment, type: WeightType, acc: string): string {
  const rel = segmentRow(seg);
  if (type === 'f32') {
    // A full chunk runs a constant trip count over its tokens, which the compiler unrolls with
    // the accumulators in registers (lavapipe, stories260K, 256-token prefill, median of 8:
    // 2641 -> 4072 tokens/s looped); a partial one (the prompt's tail, a speculation check) and
    // the classifier (only the rows asked for) loop over the tokens they have.
    // vec4 words with one invocation per row: one 16-byte read (one texel in the texture form)
    // feeds four columns of every token.
    const wide = p.vec4 === true && p.lanes === 1 && p.tileCols % 4 === 0 && p.cols % 4 === 0;
    // The subgroup form: each lane loads one staged column of a token, the row reads the rest
    // from its subgroup (lavapipe, stories260K, 256-token prefill, looped: 1.8x).
    // A full chunk reads the private copy of its inputs (registerTile).
    const sgLoop = (tokens: string, full: boolean) =>
      `
        let rw = row >> 2u;${subgroupDotWgsl({ s: p.sg!, cols: 'len', x: full && registerTile(p) ? `xr[tt * ${blocks(p)}u + c / ${p.sg}u]` : `xs[${xsAt(p, 'tt', 'c')}]`, rows: [{ acc: `${acc}[tt]`, word: (i) => `${buf}_v(rw + ${i})` }], tokens: `for (${tokens})` })}`;
    const loop = (tokens: string, full = false) =>
      wide && subgroupForm(p)
        ? sgLoop(tokens, full)
        : wide
        ? `
        for (var c4 = 0u; c4 < len / 4u; c4++) {
          let w = bitcast<vec4<f32>>(${buf}_v((row >> 2u) + c4));
          let c = 4u * c4;
          for (${tokens}) {
            let x = ${xsAt(p, 'tt', 'c')};
            ${acc}[tt] += dot(w, vec4<f32>(xs[x], xs[x + 1u], xs[x + 2u], xs[x + 3u]));
          }
        }`
        : `
        for (var c = lane; c < len; c += ${p.lanes}u) {
          let w = bitcast<f32>(${buf}_w(row + c));
          for (${tokens}) { ${acc}[tt] += w * xs[${xsAt(p, 'tt', 'c')}]; }
        }`;
    const partial = loop('var tt = t0; tt < nt; tt++');
    return `
        let row = ${seg.base} + ${rel} * ${p.cols}u + c0;${p.forcedOnly ? partial : `
        if (nt == CHUNK) {${loop('var tt = 0u; tt < CHUNK; tt++', true)}
        } else {${partial}
        }`}`;
  }
  const ue = unitElems(type, p.cols);
  return `
        let rb = ${seg.base} + ${rel} * ${deviceRowWords(type, p.cols)}u;
        let u0 = c0 / ${ue}u;
        let u1 = (c0 + len) / ${ue}u;
        for (var u = u0 + lane; u < u1; u += ${p.lanes}u) {
          for (var tt = t0; tt < nt; tt++) { ${acc}[tt] += ${subgroupUnit(p, type) ? `s${unitDotName(type, p.cols, buf)}(rb, u, ${xsAt(p, 'tt', `(u - u0) * ${ue}u`)}, sl)` : `${unitDotName(type, p.cols, buf)}(rb, u, ${xsAt(p, 'tt', `(u - u0) * ${ue}u`)})`}; }
        }`;
}

/** Row r's dots over one operand (every token of the chunk): the matvec's operand walker. */
function operandDot(p: MatmulParams, op: MatOperand, acc: string): string {
  return operandDotWgsl(op, (seg, t) => dotOf(p, op.buf, seg, t, acc));
}

export function matmulWgsl(p: MatmulParams): string {
  const rpi = p.wg / p.lanes;
  const items = Math.ceil(p.rows / rpi);
  const single = p.cols <= p.tileCols; // every token's whole input fits: stage once
  const dual = p.b !== undefined;
  const input = p.input.replaceAll('tt', 'st_t');
  const load = (c0: string, len: string) => `
    workgroupBarrier();
    for (var e = lid; e < nt * ${len}; e += WG) {
      let st_t = e / ${len};
      let c = e % ${len};
      xs[${xsAt(p, 'st_t', 'c')}] = ld(${input} + ${c0} + c);
    }
    workgroupBarrier();`;
  // The subgroup form runs the last rows' lanes on a copy of the last row (all lanes active).
  const dot = `
      ${clampsRows(p, subgroupForm(p)) ? `{
      let r = min(r, ${p.rows - 1}u);` : `if (r < ${p.rows}u) {`}
      ${operandDot(p, p.a, 'a0')}
      ${dual ? operandDot(p, p.b!, 'a1') : ''}
      }`;
  const reduce = (v: string) =>
    p.lanes === 1
      ? ''
      : `
    for (var tt = t0; tt < nt; tt++) {
      var x = ${v}[tt];
      ${rowLaneSumWgsl(p, 'x')}
      ${v}[tt] = x;
    }`;
  return /* wgsl */ `
fn s_${p.name}(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let lane = lid % ${p.lanes}u;
  let rl = lid / ${p.lanes}u;${p.sg ? `
  let sl = lid % ${p.sg}u;` : ''}
  let nt = min(step.n_tokens, CHUNK);
  let t0 = ${p.forcedOnly ? 'nt - min(step.forced, nt)' : '0u'};
  ${single ? load('0u', `${p.cols}u`) : ''}${registerTile(p) ? `
  var xr: array<f32, ${p.chunk * blocks(p)}>;
  if (nt == CHUNK) {
    for (var tt = 0u; tt < CHUNK; tt++) {
      for (var b = 0u; b < ${blocks(p)}u; b++) { xr[tt * ${blocks(p)}u + b] = xs[${xsAt(p, 'tt', `min(b * ${p.sg}u + sl, ${p.cols - 1}u)`)}]; }
    }
  }` : ''}
  for (var item = t; item < ${items}u; item += n) {
    let r = item * ${rpi}u + rl;
    var a0: array<f32, CHUNK>;
    ${dual ? 'var a1: array<f32, CHUNK>;' : ''}
    // Zeroed explicitly: a declaration inside a loop is not re-initialised on every compiler.
    for (var tt = 0u; tt < CHUNK; tt++) { a0[tt] = 0.0; ${dual ? 'a1[tt] = 0.0;' : ''} }
    ${
      single
        ? `let c0 = 0u;
    let len = ${p.cols}u;
    ${dot}`
        : `for (var c0 = 0u; c0 < ${p.cols}u; c0 += BT) {
      let len = min(BT, ${p.cols}u - c0);
      ${load('c0', 'len')}
      ${dot}
    }`
    }
    ${reduce('a0')}
    ${dual ? reduce('a1') : ''}
    if (lane == 0u && r < ${p.rows}u) {
      for (var tt = t0; tt < nt; tt++) {
        let v0 = a0[tt];
        ${dual ? 'let v1 = a1[tt];' : ''}
        ${p.epilogue}
      }
    }
  }
}
`;
}
