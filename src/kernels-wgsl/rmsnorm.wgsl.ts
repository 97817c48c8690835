/**
 * Role `rmsnorm` (replicated): out = in / sqrt(mean(in^2) + eps) * w. Instantiated for the
 * attention norm, the FFN norm and the final norm.
 */
export interface RmsnormParams {
  name: string;
  input: string; // act offset constant
  output: string;
  weights: string; // storage buffer
  base: string; // WGSL expression of the weight offset (may use `layer`)
}

export function rmsnormWgsl(p: RmsnormParams): string {
  return /* wgsl */ `
fn s_${p.name}(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  var ss = 0.0;
  for (var i = lid; i < DIM; i += WG) { let v = ld(${p.input} + i); ss = ss + v * v; }
  let total = wg_sum(ss, lid);
  let inv = 1.0 / sqrt(total / f32(DIM) + EPS);
  let wb = ${p.base};
  for (var i = lid; i < DIM; i += WG) {
    st(${p.output} + i, ld(${p.input} + i) * inv * ${p.weights}_at(wb + i));
  }
}
`;
}
