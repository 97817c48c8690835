import type { WeightType } from '../loader/types.ts';
import { attendHeadWgsl } from './attention.wgsl.ts';
import { deviceRowWords } from './dequant.wgsl.ts';

/**
 * The non-matrix stages of the batched forward (the matrices are matmul.wgsl.ts): each handles
 * the step.n_tokens tokens of a chunk, token tt at position step.pos + tt, with the same work
 * split as its decode form (so the same barrier plan holds). Activations are the T-row B_*
 * regions (batch-layout.ts).
 */

/** Stage `embed` (replicated): B_X[tt] = tok_emb[tokens[tt]]. */
export function embedBatchedWgsl(type: WeightType, dim: number): string {
  return /* wgsl */ `
fn s_embed(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let nt = min(step.n_tokens, CHUNK);
  for (var e = lid; e < nt * DIM; e += WG) {
    let tt = e / DIM;
    let tok = min(atomicLoad(&ctl[C_TOKENS + tt]), VOCAB - 1u);
    st(B_X + e, ev_${type}_w_emb(EMB_OFF + tok * ${deviceRowWords(type, dim)}u, e % DIM));
  }
}
`;
}

/**
 * Role `rmsnorm` batched (replicated): out[tt] = in[tt] / sqrt(mean(in[tt]^2) + eps) * w. One
 * invocation sums a token's squares (no reduction barrier), the scaling is spread over all.
 */
export function rmsnormBatchedWgsl(p: { name: string; input: string; output: string; weights: string; base: string }): string {
  return /* wgsl */ `
fn s_${p.name}(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let nt = min(step.n_tokens, CHUNK);
  let wb = ${p.base};
  workgroupBarrier();
  for (var tt = lid; tt < nt; tt += WG) {
    var ss = 0.0;
    for (var i = 0u; i < DIM; i++) { let v = ld(${p.input} + tt * DIM + i); ss = ss + v * v; }
    red[tt] = 1.0 / sqrt(ss / f32(DIM) + EPS);
  }
  workgroupBarrier();
  for (var e = lid; e < nt * DIM; e += WG) {
    st(${p.output} + e, ld(${p.input} + e) * red[e / DIM] * ${p.weights}_at(wb + e % DIM));
  }
  workgroupBarrier();
}
`;
}

/**
 * Stage `rope_append` batched (one KV head per work item): rotate q and k of every token of the
 * chunk at its own position, append k and v to kv[layer][pos + tt].
 */
export const ROPE_APPEND_BATCHED_WGSL = /* wgsl */ `
fn s_rope_append(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let nt = min(step.n_tokens, CHUNK);
  let half = HD / 2u;
  let per = (GROUP + 1u) * half;
  for (var h = t; h < NKV; h += n) {
    for (var e = lid; e < nt * per; e += WG) {
      let tt = e / per;
      let hh = (e % per) / half;
      let i = e % half;
      let pos = step.pos + tt;
      let cs = ROPE_OFF + (pos * half + i) * 2u;
      let cosv = w_emb_at(cs);
      let sinv = w_emb_at(cs + 1u);
      let row = B_Q + tt * QKVR;
      if (hh < GROUP) {
        let qi = row + (h * GROUP + hh) * HD + 2u * i;
        let a = ld(qi);
        let b = ld(qi + 1u);
        st(qi, a * cosv - b * sinv);
        st(qi + 1u, a * sinv + b * cosv);
      } else {
        let ki = row + QD + h * HD + 2u * i;
        let a = ld(ki);
        let b = ld(ki + 1u);
        let kb = ((layer * 2u) * SEQ + pos) * KVD + h * HD + 2u * i;
        kv[kb] = a * cosv - b * sinv;
        kv[kb + 1u] = a * sinv + b * cosv;
      }
    }
    for (var e = lid; e < nt * HD; e += WG) {
      let tt = e / HD;
      let d = e % HD;
      kv[((layer * 2u + 1u) * SEQ + step.pos + tt) * KVD + h * HD + d] = ld(B_Q + tt * QKVR + QD + KVD + h * HD + d);
    }
  }
}
`;

/**
 * Stage `attention` batched (one KV head per work item): causal attention of each token of the
 * chunk over the KV cache up to its own position (earlier chunks and the tokens before it in
 * this one). One invocation per (KV head, token, query head) walks the positions once with
 * an online softmax, so the stage has no barrier and every lane is busy.
 */
export const ATTENTION_BATCHED_WGSL = /* wgsl */ `
fn s_attention(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let nt = min(step.n_tokens, CHUNK);
  let kbase = (layer * 2u) * SEQ * KVD;
  let vbase = (layer * 2u + 1u) * SEQ * KVD;
  let scale = 1.0 / sqrt(f32(HD));
  // This work item's KV heads (t, t + n, ...) flattened with (token, query head): all lanes busy.
  let mine = (NKV - t + n - 1u) / n;
  for (var f = lid; f < mine * nt * GROUP; f += WG) {
    let h = t + (f / (nt * GROUP)) * n;
    let e = f % (nt * GROUP);
    {
      let tt = e / GROUP;
      let qh = h * GROUP + e % GROUP;
      let len = step.pos + tt + 1u;
${attendHeadWgsl('B_Q + tt * QKVR + qh * HD', 'B_ATT + tt * QD + qh * HD')}
    }
  }
}
`;
