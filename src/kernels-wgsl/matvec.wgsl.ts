/**
 * Role `matvec`: y = W · in over row tiles, with a per-row epilogue (bias, residual, SwiGLU).
 * Instantiated for qkv, wo_residual, gate_up, down_residual and the classifier.
 *
 * A work item is a tile of WG / LANES rows; LANES invocations share one row and stride over its
 * columns (LANES = 1: one invocation per row, best on CPU adapters; 32: coalesced on GPUs). The
 * input vector is staged in workgroup memory (`xs`), in tiles of TILE columns.
 */
export interface MatvecParams {
  name: string;
  rows: number;
  cols: number;
  input: string; // act offset constant of the input vector
  weights: string; // storage buffer
  base: string; // WGSL expression: offset of W (may use `layer`)
  /** A second matrix of the same shape multiplied by the same input (gate/up), in `weights2`. */
  weights2?: string;
  base2?: string;
  /** WGSL statements run by one invocation per row; `r` is the row, `a0` (`a1`) the dot products. */
  epilogue: string;
  lanes: number;
  wg: number;
  tile: number;
  /** Weights bound as vec4<f32> (every row offset and length a multiple of 4): 16-byte loads. */
  vec4?: boolean;
}

export function matvecWgsl(p: MatvecParams): string {
  const rpi = p.wg / p.lanes;
  const items = Math.ceil(p.rows / rpi);
  const single = p.cols <= p.tile; // the whole input fits the tile: stage it once
  const dual = p.base2 !== undefined;
  const load = (c0: string, len: string) => `
    workgroupBarrier();
    for (var c = lid; c < ${len}; c += WG) { xs[c] = ld(${p.input} + ${c0} + c); }
    workgroupBarrier();`;
  const dot = (c0: string, len: string) =>
    p.vec4
      ? `
      if (r < ${p.rows}u) {
        let row = (wb + r * ${p.cols}u + ${c0}) >> 2u;
        ${dual ? `let row2 = (wb2 + r * ${p.cols}u + ${c0}) >> 2u;` : ''}
        let n4 = (${len}) / 4u;
        for (var c = lane; c < n4; c += ${p.lanes}u) {
          let x = vec4<f32>(xs[4u * c], xs[4u * c + 1u], xs[4u * c + 2u], xs[4u * c + 3u]);
          a0 = a0 + dot(${p.weights}[row + c], x);
          ${dual ? `a1 = a1 + dot(${p.weights2}[row2 + c], x);` : ''}
        }
      }`
      : `
      if (r < ${p.rows}u) {
        let row = wb + r * ${p.cols}u + ${c0};
        ${dual ? `let row2 = wb2 + r * ${p.cols}u + ${c0};` : ''}
        for (var c = lane; c < ${len}; c += ${p.lanes}u) {
          a0 = a0 + ${p.weights}[row + c] * xs[c];
          ${dual ? `a1 = a1 + ${p.weights2}[row2 + c] * xs[c];` : ''}
        }
      }`;
  const reduce = (v: string) =>
    p.lanes === 1
      ? ''
      : `
    workgroupBarrier();
    red[lid] = ${v};
    workgroupBarrier();
    for (var s = ${p.lanes / 2}u; s > 0u; s = s / 2u) {
      if (lane < s) { red[lid] = red[lid] + red[lid + s]; }
      workgroupBarrier();
    }
    ${v} = red[lid];`;
  return /* wgsl */ `
fn s_${p.name}(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let wb = ${p.base};
  ${dual ? `let wb2 = ${p.base2};` : ''}
  let lane = lid % ${p.lanes}u;
  let rl = lid / ${p.lanes}u;
  ${single ? load('0u', `${p.cols}u`) : ''}
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

/** Work items of a matvec (for per-op dispatch sizes). */
export function matvecItems(rows: number, lanes: number, wg: number): number {
  return Math.ceil(rows / (wg / lanes));
}
