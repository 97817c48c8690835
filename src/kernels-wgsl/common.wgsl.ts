/**
 * Shared declarations of every kloop kernel: bindings, the step parameters, activation access.
 *
 * Cross-workgroup data (the `act` buffer) is kept in atomics holding bitcast f32: WGSL atomics
 * are relaxed, and data handed from one workgroup to another inside a dispatch is only
 * guaranteed visible through atomics. Weights are read-only; the KV cache is written and read
 * by the same workgroup inside a dispatch (its KV head's owner), so plain f32 suffices.
 */
export const COMMON_WGSL = /* wgsl */ `
struct Step {
  pos: u32,          // position of the first token of this dispatch
  n_tokens: u32,     // tokens decoded by this dispatch (K)
  forced: u32,       // tokens[0 .. forced) are given (prompt); later ones are sampled
  seed: u32,
  temperature: f32,
  top_k: u32,
  top_p: f32,
  spin_bound: u32,   // iterations before a spin gives up and raises the abort flag
  poll_spins: u32,   // how long the first workgroup keeps the occupancy poll open
  max_groups: u32,   // workgroups allowed to take part
  _pad0: u32,
  _pad1: u32,
}
struct Dispatch {
  layer: u32,        // which w[n] / kv[n] a per-layer or per-op call addresses
  slot: u32,         // this dispatch's synchronisation slot in ctl
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> disp: Dispatch;
@group(0) @binding(2) var<storage, read> w_emb: array<f32>;    // tok_emb | rms_final | rope | wcls?
@group(0) @binding(3) var<storage, read> w_attn: array<f32>;   // (layer) rms_att | wqkv | bqkv? | wo
@group(0) @binding(4) var<storage, read> w_ffn13: array<f32>;  // (layer) rms_ffn | w1 | w3
@group(0) @binding(5) var<storage, read> w_ffn2: array<f32>;   // (layer) w2
@group(0) @binding(6) var<storage, read_write> kv: array<f32>; // (layer, 2, SEQ, KVD)
@group(0) @binding(7) var<storage, read_write> act: array<atomic<u32>>; // activations as f32 bits
@group(0) @binding(8) var<storage, read_write> ctl: array<atomic<u32>>; // abort, tokens, sync slots

var<workgroup> xs: array<f32, TILE>;     // input vector tile of a matvec
var<workgroup> red: array<f32, WG>;      // reductions
var<workgroup> redi: array<u32, WG>;     // index reductions (argmax)
var<workgroup> scores: array<f32, SEQ>;  // attention scores of one head
var<workgroup> qs: array<f32, HD>;       // one query head

fn ld(i: u32) -> f32 { return bitcast<f32>(atomicLoad(&act[i])); }
fn st(i: u32, v: f32) { atomicStore(&act[i], bitcast<u32>(v)); }

// Sum of v over the workgroup (WG is a power of two); every invocation gets the result.
fn wg_sum(v: f32, lid: u32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&red[0]);
}

fn wg_max(v: f32, lid: u32) -> f32 {
  workgroupBarrier();
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&red[0]);
}

fn wg_sum_u(v: u32, lid: u32) -> u32 {
  workgroupBarrier();
  redi[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { redi[lid] = redi[lid] + redi[lid + s]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&redi[0]);
}
`;
