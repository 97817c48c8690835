import type { WeightType } from '../loader/types.ts';
import { attendHeadWgsl, softmaxStepWgsl } from './attention.wgsl.ts';
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
export const attentionBatchedWgsl = (hd: number, unrolled: boolean): string => /* wgsl */ `
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
${attendHeadWgsl('B_Q + tt * QKVR + qh * HD', 'B_ATT + tt * QD + qh * HD', hd, unrolled)}
    }
  }
}
`;

/**
 * Stage `attention` batched, subgroup form (CPU adapters with subgroup rows of `s`, see
 * subgroup.wgsl.ts): the lanes of a subgroup take `s` consecutive tokens of one query head, so
 * at every position they need the same K and V rows of their KV head. Each lane loads one value
 * of a block of `s` and the others come from subgroupBroadcast: `s` times fewer loads, which
 * llvmpipe runs as a branch per lane. The position loop runs to the subgroup's longest causal
 * length (every lane active); positions past a lane's own length leave its running max, sum and
 * accumulator unchanged. q and the accumulator are registers (`hd` unrolled).
 */
export function attentionBatchedSubgroupWgsl(hd: number, s: number): string {
  const d = Array.from({ length: hd }, (_, i) => i);
  const blocks = Array.from({ length: Math.ceil(hd / s) }, (_, b) => b);
  const lanesOf = (b: number) => Math.min(s, hd - b * s);
  const k = blocks
    .map((b) => `{
        let kl = kv[kb + min(${b * s}u + sl, ${hd - 1}u)];
        sc += ${Array.from({ length: lanesOf(b) }, (_, j) => `q${b * s + j} * subgroupBroadcast(kl, ${j}u)`).join(' + ')};
      }`)
    .join('\n      ');
  const v = blocks
    .map((b) => `{
        let vl = kv[vb + min(${b * s}u + sl, ${hd - 1}u)];
        ${Array.from({ length: lanesOf(b) }, (_, j) => `a${b * s + j} = a${b * s + j} * corr + ex * subgroupBroadcast(vl, ${j}u);`).join('\n        ')}
      }`)
    .join('\n      ');
  return /* wgsl */ `
fn s_attention(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let nt = min(step.n_tokens, CHUNK);
  let kbase = (layer * 2u) * SEQ * KVD;
  let vbase = (layer * 2u + 1u) * SEQ * KVD;
  let scale = 1.0 / sqrt(f32(HD));
  let sl = lid % ${s}u;
  let mine = (NKV - t + n - 1u) / n;
  let tb = (nt + ${s - 1}u) / ${s}u;
  // Subgroup items: (this work item's KV head, query head of its group, block of s tokens).
  for (var f = lid / ${s}u; f < mine * GROUP * tb; f += WG / ${s}u) {
    let h = t + (f / (GROUP * tb)) * n;
    let e = f % (GROUP * tb);
    let qh = h * GROUP + e / tb;
    let t0 = (e % tb) * ${s}u;
    let tt = min(t0 + sl, nt - 1u);
    let len = step.pos + tt + 1u;
    let lmax = step.pos + min(t0 + ${s}u, nt);
    let qb = B_Q + tt * QKVR + qh * HD;
    ${d.map((i) => `let q${i} = ld(qb + ${i}u);`).join(' ')}
    ${d.map((i) => `var a${i} = 0.0;`).join(' ')}
    var m = -3.402823e38;
    var sum = 0.0;
    for (var p = 0u; p < lmax; p++) {
      let kb = kbase + p * KVD + h * HD;
      var sc = 0.0;
      ${k}
      sc = sc * scale;
      let live = p < len;
      ${softmaxStepWgsl('sc', 'live')}
      sum = sum * corr + ex;
      let vb = vbase + p * KVD + h * HD;
      ${v}
      m = select(m, max(m, sc), live);
    }
    if (t0 + sl < nt) {
      let ob = B_ATT + tt * QD + qh * HD;
      ${d.map((i) => `st(ob + ${i}u, a${i} / sum);`).join(' ')}
    }
  }
}
`;
}
