/**
 * Shared declarations of every kloop kernel: bindings, the step parameters, activation access.
 *
 * Activations (the `act` buffer) are read and written only through ld()/st(). When several
 * workgroups of one dispatch hand activations to each other ('atomic' handoff), they are kept in
 * atomics holding bitcast f32: WGSL atomics are relaxed, and data handed from one workgroup to
 * another inside a dispatch is only guaranteed visible through atomics. When no activation
 * crosses workgroups inside a dispatch ('plain': per-op kernels, whose dispatch boundaries order
 * everything, and fused kernels run by a single workgroup), plain f32 is used: atomics cost
 * microseconds each on CPU adapters. Weights are read-only; the KV cache is written and read by
 * the same workgroup inside a dispatch (its KV head's owner), so plain f32 suffices there.
 */
export type Handoff = 'atomic' | 'plain';

/** Binding numbers of group 0, shared by every kernel (8 storage buffers: the spec's default limit). */
export const BINDING = { step: 0, disp: 1, emb: 2, attn: 3, ffn1: 4, ffn3: 5, ffn2: 6, kv: 7, act: 8, ctl: 9 } as const;

/**
 * The step uniform, declared once: the WGSL struct Step, its size (STEP_BYTES) and the host's
 * writer (packStep) are all generated from this table, in this order.
 */
export const STEP_FIELDS = [
  ['pos', 'u32', 'position of the first token of this dispatch'],
  ['n_tokens', 'u32', 'tokens decoded by this dispatch (K)'],
  ['forced', 'u32', 'tokens[0 .. forced) are given (prompt); later ones are sampled'],
  ['seed', 'u32', 'sampler seed'],
  ['temperature', 'f32', '0: greedy argmax'],
  ['top_k', 'u32', '0: off'],
  ['top_p', 'f32', '1: off'],
  ['spin_bound', 'u32', 'iterations before a spin gives up and raises the abort flag'],
  ['poll_spins', 'u32', 'how long the first workgroup keeps the occupancy poll open'],
  ['max_groups', 'u32', 'workgroups allowed to take part'],
] as const satisfies readonly (readonly [string, 'u32' | 'f32', string])[];

export type StepField = (typeof STEP_FIELDS)[number][0];

/** Bytes of the step uniform: its fields, padded to 16 (a uniform struct's alignment). */
export const STEP_BYTES = Math.ceil((STEP_FIELDS.length * 4) / 16) * 16;

/** The step uniform's bytes, each field written as its table type says. */
export function packStep(values: Record<StepField, number>): ArrayBuffer {
  const buf = new ArrayBuffer(STEP_BYTES);
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  STEP_FIELDS.forEach(([name, type], i) => {
    if (type === 'f32') f[i] = values[name];
    else u[i] = values[name] >>> 0;
  });
  return buf;
}

function stepStruct(): string {
  const fields = STEP_FIELDS.map(([name, type, what]) => `  ${`${name}: ${type},`.padEnd(18)} // ${what}`);
  for (let i = STEP_FIELDS.length; i < STEP_BYTES / 4; i++) fields.push(`  _pad${i - STEP_FIELDS.length}: u32,`);
  return `struct Step {\n${fields.join('\n')}\n}`;
}

const ACT_ATOMIC = `
@group(0) @binding(${BINDING.act}) var<storage, read_write> act: array<atomic<u32>>; // activations as f32 bits
fn ld(i: u32) -> f32 { return bitcast<f32>(atomicLoad(&act[i])); }
fn st(i: u32, v: f32) { atomicStore(&act[i], bitcast<u32>(v)); }`;

const ACT_PLAIN = `
@group(0) @binding(${BINDING.act}) var<storage, read_write> act: array<f32>;
fn ld(i: u32) -> f32 { return act[i]; }
fn st(i: u32, v: f32) { act[i] = v; }`;
export const commonWgsl = (style: 'cpu' | 'gpu', handoff: Handoff = 'atomic', vec4 = false, texture = false, sg = 0): string => /* wgsl */ `
${stepStruct()}
struct Dispatch {
  layer: u32,        // which w[n] / kv[n] a per-layer or per-op call addresses
  slot: u32,         // this dispatch's synchronisation slot in ctl
}

@group(0) @binding(${BINDING.step}) var<uniform> step: Step;
@group(0) @binding(${BINDING.disp}) var<uniform> disp: Dispatch;
${weightDecls(vec4, texture)}
@group(0) @binding(${BINDING.kv}) var<storage, read_write> kv: array<f32>; // (layer, 2, SEQ, KVD)
${handoff === 'atomic' ? ACT_ATOMIC : ACT_PLAIN}
@group(0) @binding(${BINDING.ctl}) var<storage, read_write> ctl: array<atomic<u32>>; // abort, tokens, sync slots

var<workgroup> xs: array<f32, XS_LEN>;   // input vector tile of a matvec (TILE values, padded on GPUs)
var<workgroup> red: array<f32, RED_LEN>; // reductions (WG), per-token factors of a chunk (CHUNK)
var<workgroup> redi: array<u32, WG>;     // index reductions (argmax)
var<workgroup> scores: array<f32, SEQ>;  // attention scores of one head
var<workgroup> qs: array<f32, HD>;       // one query head


${reductions(style, sg)}
`;

/**
 * Workgroup reductions. 'gpu': a tree (log2(WG) barriers, every invocation busy), or with
 * subgroups of a fixed width `sg` (the GPU form's lane sums, device.ts) one subgroup operation,
 * the WG / sg partials summed by one invocation, three barriers (1024-invocation workgroups: ten
 * tree levels otherwise). 'cpu': each invocation writes its partial and then sums all WG
 * partials itself (two barriers): CPU adapters run invocations as SIMD lanes of one thread,
 * where a barrier costs microseconds.
 */
function reductions(style: 'cpu' | 'gpu', sg = 0): string {
  const subgroup = style === 'gpu' && sg > 1;
  const op = (name: string, t: string, arr: string, combine: (a: string, b: string) => string, subgroupOp: string) =>
    subgroup
      ? `
fn ${name}(v: ${t}, lid: u32) -> ${t} {
  let s = ${subgroupOp}(v);
  workgroupBarrier();
  if (lid % ${sg}u == 0u) { ${arr}[lid / ${sg}u] = s; }
  workgroupBarrier();
  if (lid == 0u) {
    var r = ${arr}[0];
    for (var k = 1u; k < WG / ${sg}u; k++) { r = ${combine('r', `${arr}[k]`)}; }
    ${arr}[0] = r;
  }
  return workgroupUniformLoad(&${arr}[0]);
}`
      : style === 'gpu'
      ? `
fn ${name}(v: ${t}, lid: u32) -> ${t} {
  workgroupBarrier();
  ${arr}[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) { ${arr}[lid] = ${combine(`${arr}[lid]`, `${arr}[lid + s]`)}; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&${arr}[0]);
}`
      : `
fn ${name}(v: ${t}, lid: u32) -> ${t} {
  workgroupBarrier();
  ${arr}[lid] = v;
  workgroupBarrier();
  var r = ${arr}[0];
  for (var k = 1u; k < WG; k++) { r = ${combine('r', `${arr}[k]`)}; }
  return r;
}`;
  return [
    op('wg_sum', 'f32', 'red', (a, b) => `${a} + ${b}`, 'subgroupAdd'),
    op('wg_max', 'f32', 'red', (a, b) => `max(${a}, ${b})`, 'subgroupMax'),
    op('wg_sum_u', 'u32', 'redi', (a, b) => `${a} + ${b}`, 'subgroupAdd'),
  ].join('\n');
}

/** The GPU-style declarations (tree reductions), for tools that compose their own kernels. */
export const COMMON_WGSL = commonWgsl('gpu');

/**
 * The weight buffers: u32 words (packed encodings, see dequant.wgsl.ts; f32 values as their
 * bits), vec4<u32> for 16-byte loads, or (texture) rgba32uint texels of the same words, TEXW =
 * 2^TEX_SHIFT a row (engine/weight-store.ts). `<name>_v(i)` reads vec4 word i (vec4 and texture
 * forms), `<name>_w(i)` word i, `<name>_at(i)` word i as an f32 value (norms, biases, the RoPE
 * table, f32 matrices).
 */
function weightDecls(vec4: boolean, texture: boolean): string {
  const bufs: [string, number, string][] = [
    ['w_emb', BINDING.emb, 'tok_emb | rms_final | rope | wcls?'],
    ['w_attn', BINDING.attn, '(layer) rms_att | wq | wk | wv | bqkv? | wo'],
    ['w_ffn1', BINDING.ffn1, '(layer) rms_ffn | w1 (gate)'],
    ['w_ffn3', BINDING.ffn3, '(layer) w3 (up)'],
    ['w_ffn2', BINDING.ffn2, '(layer) w2 (down)'],
  ];
  const words = (name: string) => `
fn ${name}_w(i: u32) -> u32 { return ${name}_v(i >> 2u)[i & 3u]; }
fn ${name}_at(i: u32) -> f32 { return bitcast<f32>(${name}_w(i)); }`;
  return bufs
    .map(([name, binding, what]) =>
      texture
        ? `@group(0) @binding(${binding}) var ${name}: texture_2d<u32>; // ${what}
fn ${name}_v(i: u32) -> vec4<u32> { return textureLoad(${name}, vec2<u32>(i & ((1u << TEX_SHIFT) - 1u), i >> TEX_SHIFT), 0); }${words(name)}`
        : vec4
          ? `@group(0) @binding(${binding}) var<storage, read> ${name}: array<vec4<u32>>; // ${what}
fn ${name}_v(i: u32) -> vec4<u32> { return ${name}[i]; }${words(name)}`
          : `@group(0) @binding(${binding}) var<storage, read> ${name}: array<u32>; // ${what}
fn ${name}_w(i: u32) -> u32 { return ${name}[i]; }
fn ${name}_at(i: u32) -> f32 { return bitcast<f32>(${name}[i]); }`,
    )
    .join('\n');
}
