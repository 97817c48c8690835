/**
 * Stage `sample` (replicated: every workgroup derives the same token, so the next token's
 * embedding needs no barrier). The semantics are those of src/engine/sampler.ts: argmax (first
 * index wins a tie) at temperature 0; else top-k and top-p thresholds found by bisection over the
 * float ordering, then one uniform draw per position from a PCG hash of (seed, pos).
 * The token is written to tokens[j + 1] unless that slot holds a given (prompt) token.
 */
const ARGMAX_TREE = `
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
      if (lid < s) {
        let ov = red[lid + s];
        let oi = redi[lid + s];
        if (ov > red[lid] || (ov == red[lid] && oi < redi[lid])) { red[lid] = ov; redi[lid] = oi; }
      }
      workgroupBarrier();
    }
    tok = redi[0];`;
const ARGMAX_FLAT = `
    var best = red[0];
    tok = redi[0];
    for (var k = 1u; k < WG; k++) {
      if (red[k] > best || (red[k] == best && redi[k] < tok)) { best = red[k]; tok = redi[k]; }
    }`;

/**
 * GPUs: four logits a lane per iteration, their loads issued together (each workgroup scans the
 * whole vocabulary: on an H200, 128256 logits with 1024 invocations took 35 us a token one load
 * at a time). A lane still visits its indices in increasing order, so the first index wins a tie.
 */
const GPU_ARGMAX_UNROLLED = `
    for (; i + 3u * WG < VOCAB; i += 4u * WG) {
      let v0 = ld(A_LOGITS + i);
      let v1 = ld(A_LOGITS + i + WG);
      let v2 = ld(A_LOGITS + i + 2u * WG);
      let v3 = ld(A_LOGITS + i + 3u * WG);
      if (v0 > bv || (bi == 0xffffffffu && v0 == bv)) { bv = v0; bi = i; }
      if (v1 > bv || (bi == 0xffffffffu && v1 == bv)) { bv = v1; bi = i + WG; }
      if (v2 > bv || (bi == 0xffffffffu && v2 == bv)) { bv = v2; bi = i + 2u * WG; }
      if (v3 > bv || (bi == 0xffffffffu && v3 == bv)) { bv = v3; bi = i + 3u * WG; }
    }`;

export const sampleWgsl = (style: 'cpu' | 'gpu'): string => /* wgsl */ `
fn key_of(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn pcg_hash(x: u32) -> u32 {
  let state = x * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn uniform_at(seed: u32, pos: u32) -> f32 {
  let h = pcg_hash(seed ^ ((pos + 1u) * 0x9e3779b9u));
  return f32(h >> 8u) / 16777216.0;
}

// Largest key t with count(keys >= t) >= k (bisection over u32, 32 steps).
fn kth_key(k: u32, lid: u32) -> u32 {
  var lo = 0u;
  var hi = 0xffffffffu;
  for (var it = 0u; it < 32u; it++) {
    let mid = lo + (hi - lo) / 2u + ((hi - lo) & 1u);
    var c = 0u;
    for (var i = lid; i < VOCAB; i += WG) { if (key_of(ld(A_LOGITS + i)) >= mid) { c = c + 1u; } }
    let total = wg_sum_u(c, lid);
    if (lo < hi) { if (total >= k) { lo = mid; } else { hi = mid - 1u; } }
  }
  return lo;
}

fn weight_of(i: u32, kmin: u32, mx: f32) -> f32 {
  let v = ld(A_LOGITS + i);
  if (key_of(v) < kmin) { return 0.0; }
  return exp((v - mx) / step.temperature);
}

fn s_sample(t: u32, n: u32, lid: u32, layer: u32, j: u32) {
  var tok = 0u;
  if (step.temperature == 0.0) {
    var bv = -3.402823e38;
    var bi = 0xffffffffu;
    var i = lid;${style === 'gpu' ? GPU_ARGMAX_UNROLLED : ''}
    for (; i < VOCAB; i += WG) {
      let v = ld(A_LOGITS + i);
      if (v > bv || (bi == 0xffffffffu && v == bv)) { bv = v; bi = i; }
    }
    workgroupBarrier();
    red[lid] = bv;
    redi[lid] = bi;
    workgroupBarrier();
    ${style === 'gpu' ? ARGMAX_TREE : ARGMAX_FLAT}
  } else {
    var m = -3.402823e38;
    for (var i = lid; i < VOCAB; i += WG) { m = max(m, ld(A_LOGITS + i)); }
    let mx = wg_max(m, lid);
    var kmin = 0u;
    if (step.top_k > 0u && step.top_k < VOCAB) { kmin = kth_key(step.top_k, lid); }
    var z = 0.0;
    for (var i = lid; i < VOCAB; i += WG) { z = z + weight_of(i, kmin, mx); }
    let total = wg_sum(z, lid);
    var pmin = kmin;
    if (step.top_p < 1.0) {
      let need = step.top_p * total;
      var lo = 0u;
      var hi = 0xffffffffu;
      for (var it = 0u; it < 32u; it++) {
        let mid = lo + (hi - lo) / 2u + ((hi - lo) & 1u);
        var s = 0.0;
        for (var i = lid; i < VOCAB; i += WG) {
          if (key_of(ld(A_LOGITS + i)) >= mid) { s = s + weight_of(i, kmin, mx); }
        }
        let mass = wg_sum(s, lid);
        if (lo < hi) { if (mid < kmin || mass >= need) { lo = mid; } else { hi = mid - 1u; } }
      }
      pmin = max(lo, kmin);
    }
    // Contiguous chunks per invocation; invocation 0 walks the chunk sums, then the chunk.
    let chunk = (VOCAB + WG - 1u) / WG;
    var cs = 0.0;
    for (var i = lid * chunk; i < min(VOCAB, (lid + 1u) * chunk); i++) {
      if (key_of(ld(A_LOGITS + i)) >= pmin) { cs = cs + weight_of(i, kmin, mx); }
    }
    workgroupBarrier();
    red[lid] = cs;
    workgroupBarrier();
    if (lid == 0u) {
      var sum = 0.0;
      for (var k = 0u; k < WG; k++) { sum = sum + red[k]; }
      let r = uniform_at(step.seed, step.pos + j) * sum;
      var acc = 0.0;
      var found = 0xffffffffu;
      var last = 0u;
      for (var k = 0u; k < WG && found == 0xffffffffu; k++) {
        if (red[k] == 0.0) { continue; }
        if (acc + red[k] > r) {
          for (var i = k * chunk; i < min(VOCAB, (k + 1u) * chunk); i++) {
            if (key_of(ld(A_LOGITS + i)) < pmin) { continue; }
            acc = acc + weight_of(i, kmin, mx);
            last = i;
            if (acc > r) { found = i; break; }
          }
        } else {
          acc = acc + red[k];
          for (var i = k * chunk; i < min(VOCAB, (k + 1u) * chunk); i++) {
            if (key_of(ld(A_LOGITS + i)) >= pmin && weight_of(i, kmin, mx) > 0.0) { last = i; }
          }
        }
      }
      tok = select(found, last, found == 0xffffffffu);
    }
  }
  if (lid == 0u && j + 1u >= step.forced) { atomicStore(&ctl[C_TOKENS + j + 1u], tok); }
}
`;
