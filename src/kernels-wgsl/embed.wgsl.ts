/** Stage `embed` (replicated): x = tok_emb[token j of this dispatch]. */
export const EMBED_WGSL = /* wgsl */ `
fn s_embed(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let tok = min(atomicLoad(&ctl[C_TOKENS + j]), VOCAB - 1u);
  for (var i = lid; i < DIM; i += WG) {
    st(A_X + i, w_emb_at(EMB_OFF + tok * DIM + i));
  }
}
`;
