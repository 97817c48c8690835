import type { WeightType } from '../loader/types.ts';
import { deviceRowWords } from './dequant.wgsl.ts';

/**
 * Stage `embed` (replicated): x = tok_emb[token j of this dispatch], the row decoded from the
 * table's encoding (ev_<type>_w_emb, dequant.wgsl.ts).
 */
export function embedWgsl(type: WeightType, dim: number): string {
  return /* wgsl */ `
fn s_embed(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let tok = min(atomicLoad(&ctl[C_TOKENS + j]), VOCAB - 1u);
  let rb = EMB_OFF + tok * ${deviceRowWords(type, dim)}u;
  for (var i = lid; i < DIM; i += WG) {
    st(A_X + i, ev_${type}_w_emb(rb, i));
  }
}
`;
}
