/**
 * Stage `rope_append` (one KV head per work item): rotate the adjacent pairs of the group's
 * query heads and of the key head at `pos` (angles from the host's float64 table), then append
 * k and v to kv[layer][pos]. The same work item owns this KV head in `attention`.
 */
export const ROPE_APPEND_WGSL = /* wgsl */ `
fn s_rope_append(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let pos = step.pos + j;
  let half = HD / 2u;
  for (var h = t; h < NKV; h += n) {
    for (var e = lid; e < (GROUP + 1u) * half; e += WG) {
      let hh = e / half;
      let i = e % half;
      let cs = ROPE_OFF + (pos * half + i) * 2u;
      let cosv = w_emb_at(cs);
      let sinv = w_emb_at(cs + 1u);
      if (hh < GROUP) {
        let qi = A_Q + (h * GROUP + hh) * HD + 2u * i;
        let a = ld(qi);
        let b = ld(qi + 1u);
        st(qi, a * cosv - b * sinv);
        st(qi + 1u, a * sinv + b * cosv);
      } else {
        let ki = A_K + h * HD + 2u * i;
        let a = ld(ki);
        let b = ld(ki + 1u);
        let kb = ((layer * 2u) * SEQ + pos) * KVD + h * HD + 2u * i;
        kv[kb] = a * cosv - b * sinv;
        kv[kb + 1u] = a * sinv + b * cosv;
      }
    }
    for (var d = lid; d < HD; d += WG) {
      kv[((layer * 2u + 1u) * SEQ + pos) * KVD + h * HD + d] = ld(A_V + h * HD + d);
    }
  }
}
`;
