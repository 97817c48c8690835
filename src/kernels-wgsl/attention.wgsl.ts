// Stage `attention`: scores = q·K[0..pos]/sqrt(HD), softmax, att = scores·V.

/**
 * Lanes per query head of the concurrent form: the largest power of two with GROUP of them in a
 * workgroup, at least a head's width; 0 where the form does not apply (the scores of all GROUP
 * heads, one per lane, must fit `scores`: WG <= SEQ).
 */
export function attentionGroupLanes(k: { WG: number; SEQ: number; GROUP: number; HD: number }): number {
  if (k.WG > k.SEQ) return 0;
  let ags = k.WG;
  while (ags * k.GROUP > k.WG) ags /= 2;
  return ags >= k.HD && ags >= 2 ? ags : 0;
}

/**
 * Stage `attention`, parallel form (GPUs), one KV head per work item. Contexts of at most AGS
 * positions (attentionGroupLanes) take the concurrent form: the GROUP query heads of the KV head
 * at once, AGS lanes each, one position a lane (its score in a register), the max and the sum
 * reduced within each head's lanes, then the weighted sum of V by (dimension, position group)
 * lanes. Longer contexts take the GROUP heads in turn: scores in workgroup memory, workgroup
 * reductions, output lanes of DW head dimensions x PG position groups reduced through `red`.
 * On an H200 (Llama-3.2-1B, 1024 invocations, 32 positions) the heads in turn took 19.5 us a
 * call, most of it four rounds of barrier trees.
 */
export function attentionParallelWgsl(k: { WG: number; SEQ: number; GROUP: number; HD: number }): string {
  const ags = attentionGroupLanes(k);
  const apg = Math.floor(ags / k.HD);
  // A reduction within each head's AGS lanes (segments of `red`), every invocation at every barrier.
  const segReduce = (v: string, out: string, combine: (a: string, b: string) => string) => `
      workgroupBarrier();
      red[lid] = ${v};
      workgroupBarrier();
      for (var w = ${ags / 2}u; w > 0u; w = w / 2u) {
        if (li < w) { red[lid] = ${combine('red[lid]', 'red[lid + w]')}; }
        workgroupBarrier();
      }
      let ${out} = red[lid - li];`;
  const concurrent = ags === 0 ? '' : `
  if (len <= ${ags}u) {
    let g = lid / ${ags}u;
    let li = lid % ${ags}u;
    let head = g < GROUP;
    let live = head && li < len;
    for (var h = t; h < NKV; h += n) {
      let qh = h * GROUP + min(g, GROUP - 1u);
      var s = -3.402823e38;
      if (live) {
        let kb = kbase + li * KVD + h * HD;
        let qb = A_Q + qh * HD;
        var qk = 0.0;
        for (var d = 0u; d < HD; d++) { qk = qk + ld(qb + d) * kv[kb + d]; }
        s = qk * scale;
      }${segReduce('s', 'mx', (a, b) => `max(${a}, ${b})`)}
      let e = select(0.0, exp(s - mx), live);${segReduce('e', 'total', (a, b) => `${a} + ${b}`)}
      scores[lid] = e;
      workgroupBarrier();
      // Weighted sum of V: lane (d = li % HD, pg = li / HD) over positions pg, pg + ${apg}, ...
      let d = li % HD;
      let pg = li / HD;
      var acc = 0.0;
      if (head && pg < ${apg}u) {
        for (var p = pg; p < len; p += ${apg}u) { acc = acc + scores[g * ${ags}u + p] * kv[vbase + p * KVD + h * HD + d]; }
      }
      workgroupBarrier();
      red[lid] = acc;
      workgroupBarrier();
      if (head && pg == 0u) {
        var s2 = acc;
        for (var k = 1u; k < ${apg}u; k++) { s2 = s2 + red[g * ${ags}u + k * HD + d]; }
        st(A_ATT + qh * HD + d, s2 / total);
      }
    }
    return;
  }`;
  return /* wgsl */ `
fn s_attention(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let pos = step.pos + j;
  let len = pos + 1u;
  let kbase = (layer * 2u) * SEQ * KVD;
  let vbase = (layer * 2u + 1u) * SEQ * KVD;
  let scale = 1.0 / sqrt(f32(HD));${concurrent}
  for (var h = t; h < NKV; h += n) {
    for (var g = 0u; g < GROUP; g++) {
      let qh = h * GROUP + g;
      workgroupBarrier();
      for (var d = lid; d < HD; d += WG) { qs[d] = ld(A_Q + qh * HD + d); }
      workgroupBarrier();
      var m = -3.402823e38;
      for (var p = lid; p < len; p += WG) {
        let kb = kbase + p * KVD + h * HD;
        var s = 0.0;
        for (var d = 0u; d < HD; d++) { s = s + qs[d] * kv[kb + d]; }
        s = s * scale;
        scores[p] = s;
        m = max(m, s);
      }
      let mx = wg_max(m, lid);
      var sum = 0.0;
      for (var p = lid; p < len; p += WG) {
        let e = exp(scores[p] - mx);
        scores[p] = e;
        sum = sum + e;
      }
      let total = wg_sum(sum, lid);
      // Weighted sum of V: invocation (d = lid % DW, grp = lid / DW) over positions grp, grp+PG, ...
      let dl = lid % DW;
      let grp = lid / DW;
      for (var d0 = 0u; d0 < HD; d0 += DW) {
        var acc = 0.0;
        let d = d0 + dl;
        if (grp < PG && d < HD) {
          for (var p = grp; p < len; p += PG) { acc = acc + scores[p] * kv[vbase + p * KVD + h * HD + d]; }
        }
        workgroupBarrier();
        red[lid] = acc;
        workgroupBarrier();
        if (grp == 0u && d < HD) {
          var s2 = acc;
          for (var k = 1u; k < PG; k++) { s2 = s2 + red[k * DW + dl]; }
          st(A_ATT + qh * HD + d, s2 / total);
        }
      }
    }
  }
}
`;
}

/**
 * One step of the online softmax for a score `s`, in WGSL: sets `corr` (the factor the running
 * sum and accumulator are rescaled by) and `ex` (the weight of this position). Of exp(m - max(m, s))
 * and exp(s - max(m, s)) one is exp(0) = 1 and the other exp(-|s - m|): one exp a position
 * instead of two, with the same values. With `live` (a WGSL bool) a position where it is false
 * leaves everything as it is (corr 1, ex 0).
 */
export const softmaxStepWgsl = (s: string, live?: string): string => `let up = ${live ? `${live} && ` : ''}${s} > m;
        let e = exp(-abs(${s} - m));
        let corr = select(1.0, e, up);
        let ex = ${live ? `select(0.0, select(e, 1.0, up), ${live})` : 'select(e, 1.0, up)'};`;

/**
 * One query head `qh` of KV head `h` over positions [0, len), one invocation, with an online
 * softmax (running max and sum, rescaling the accumulator): no barrier, no scores buffer. `q`
 * and `out` are WGSL expressions of the head's first query value (in `act`) and output index.
 * Needs kbase, vbase, scale, h, qh and len in scope. The serial decode form and the batched
 * form both run it.
 *
 * With `unrolled` (the CPU style) and a head dimension `hd` that is a multiple of 4 the query
 * and the accumulator are hd / 4 vec4 values, unrolled: registers, where indexed private arrays
 * stay in memory on SwiftShader (its attention took 172 us a call at position 128 on
 * stories260K that way, 51 us this way). The GPU style keeps the loops (a GPU compiler unrolls
 * them itself; llvmpipe, which runs the GPU form in the tests, compiles the unrolled batched
 * form of a 32-wide head for many minutes).
 */
export const attendHeadWgsl = (q: string, out: string, hd: number, unrolled: boolean): string => {
  if (!unrolled || hd % 4 !== 0) {
    return `
      var q: array<f32, HD>;
      var acc: array<f32, HD>;
      // Zeroed explicitly: a declaration inside a loop is not re-initialised on every compiler.
      for (var d = 0u; d < HD; d++) { q[d] = ld(${q} + d); acc[d] = 0.0; }
      var m = -3.402823e38;
      var sum = 0.0;
      for (var p = 0u; p < len; p++) {
        let kb = kbase + p * KVD + h * HD;
        var s = 0.0;
        for (var d = 0u; d < HD; d++) { s = s + q[d] * kv[kb + d]; }
        s = s * scale;
        ${softmaxStepWgsl('s')}
        sum = sum * corr + ex;
        let vb = vbase + p * KVD + h * HD;
        for (var d = 0u; d < HD; d++) { acc[d] = acc[d] * corr + ex * kv[vb + d]; }
        m = max(m, s);
      }
      for (var d = 0u; d < HD; d++) { st(${out} + d, acc[d] / sum); }`;
  }
  const r = Array.from({ length: hd / 4 }, (_, i) => i);
  const quad = (at: (k: number) => string, i: number) => `vec4<f32>(${[0, 1, 2, 3].map((k) => at(4 * i + k)).join(', ')})`;
  return `
      let qb = ${q};
      ${r.map((i) => `let q${i} = ${quad((k) => `ld(qb + ${k}u)`, i)};`).join('\n      ')}
      ${r.map((i) => `var a${i} = vec4<f32>(0.0);`).join('\n      ')}
      var m = -3.402823e38;
      var sum = 0.0;
      for (var p = 0u; p < len; p++) {
        let kb = kbase + p * KVD + h * HD;
        let s = (${r.map((i) => `dot(q${i}, ${quad((k) => `kv[kb + ${k}u]`, i)})`).join(' + ')}) * scale;
        ${softmaxStepWgsl('s')}
        sum = sum * corr + ex;
        let vb = vbase + p * KVD + h * HD;
        ${r.map((i) => `a${i} = a${i} * corr + ex * ${quad((k) => `kv[vb + ${k}u]`, i)};`).join('\n        ')}
        m = max(m, s);
      }
      let ob = ${out};
      ${r.map((i) => [0, 1, 2, 3].map((k) => `st(ob + ${4 * i + k}u, a${i}.${'xyzw'[k]} / sum);`).join(' ')).join('\n      ')}`;
};

/**
 * Stage `attention`, serial form (CPU adapters): one invocation per query head (attendHeadWgsl),
 * so the stage has no barrier at all. Same work split (one KV head per work item) as the parallel
 * form; the query heads of ALL this work item's KV heads are spread over the lanes together
 * (with one KV head at a time only GROUP lanes of a SIMD row had work: stories260K's
 * attention, 8 heads over 4 KV heads, took 29 us a call on lavapipe that way).
 */
export const attentionSerialWgsl = (hd: number): string => /* wgsl */ `
fn s_attention(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  let len = step.pos + j + 1u;
  let kbase = (layer * 2u) * SEQ * KVD;
  let vbase = (layer * 2u + 1u) * SEQ * KVD;
  let scale = 1.0 / sqrt(f32(HD));
  // This work item's KV heads (t, t + n, ...) flattened with their query heads.
  let mine = (NKV - t + n - 1u) / n;
  for (var f = lid; f < mine * GROUP; f += WG) {
    let h = t + (f / GROUP) * n;
    let qh = h * GROUP + f % GROUP;
    {${attendHeadWgsl('A_Q + qh * HD', 'A_ATT + qh * HD', hd, true)}
    }
  }
}
`;
