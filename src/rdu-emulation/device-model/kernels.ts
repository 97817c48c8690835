/**
 * The microbenchmark kernels (microbench.ts): two plain ones (tiny dispatch, copy) and three
 * composed by the engine's own composer from its stage bodies and grid sync, so that what is
 * timed is what the executors run.
 */
import type { Handoff } from '../../kernels-wgsl/common.wgsl.ts';
import { composeModule } from '../../engine/compose.ts';
import type { Layout } from '../../engine/layout.ts';
import { STAGES, type Schedule, type StageId } from '../../engine/schedule.ts';

export const TINY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1) fn tiny() { out[0] = out[0] + 1u; }
`;

export const COPY_WGSL = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(64) fn copy(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let n = arrayLength(&src);
  let stride = nwg.x * 64u;
  for (var i = g.x; i < n; i += stride) { dst[i] = src[i]; }
}
`;

/** The barrier microbenchmark kernel: discovery, then step.n_tokens grid barriers. */
export function barrierWgsl(layout: Layout): string {
  return composeModule(layout, [], /* wgsl */ `
@compute @workgroup_size(WG) fn barriers(@builtin(local_invocation_index) lid: u32) {
  let t = discover(lid);
  if (t == NONE || step.n_tokens == 0u) { return; }
  for (var i = 0u; i < step.n_tokens; i++) {
    if (!grid_sync(lid)) { return; }
  }
}
@compute @workgroup_size(WG) fn empty(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u && step.max_groups == 0xffffffffu) { atomicStore(&ctl[0], 1u); }
}`, true, 'atomic');
}

/** The matvec microbenchmark kernel: the engine's gate_up stage over every layer in turn. */
export function matvecWgsl(layout: Layout, handoff: Handoff): string {
  return composeModule(layout, ['gate_up'], /* wgsl */ `
@compute @workgroup_size(WG) fn stream(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  for (var layer = 0u; layer < NLAYERS; layer++) {
    s_gate_up(wid.x, nwg.x, lid, layer, 0u);
    storageBarrier(); workgroupBarrier();
  }
}`, false, handoff);
}

/**
 * Every stage body, each wrapped in an entry point that calls it step.n_tokens times from layer
 * disp.layer on (one layer after another); given the looped schedule (whose loop calls run
 * consecutive layers) `stage_token`: a whole token's stages in order, step.n_tokens times; and
 * given a decoder layer's stages, `stage_layer`: them in order on layer disp.layer (a per-layer
 * dispatch's work).
 */
export function stagesWgsl(layout: Layout, handoff: Handoff, schedule?: Schedule, layerStages?: readonly StageId[]): string {
  const ids = Object.keys(STAGES) as StageId[];
  const call = (id: StageId, layer: string) => `s_${id}(wid.x, nwg.x, lid, ${layer}, 0u);
    storageBarrier(); workgroupBarrier();`;
  // One token's stages in the schedule's order, every layer: the weights walked as a token walks them.
  const tokenBody = (schedule?.calls ?? [])
    .map((c) => {
      if (c.kind === 'loop') {
        return `for (var layer = ${c.layers[0]}u; layer <= ${c.layers[c.layers.length - 1]}u; layer++) {
    ${c.stages.map((id) => call(id, 'layer')).join('\n    ')}
    }`;
      }
      return c.stages.map((id) => call(id, c.kind === 'layer' ? `${c.layer}u` : '0u')).join('\n    ');
    })
    .join('\n    ');
  const token = schedule
    ? [/* wgsl */ `
@compute @workgroup_size(WG) fn stage_token(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  for (var i = 0u; i < step.n_tokens; i++) {
    ${tokenBody}
  }
}`]
    : [];
  const entries = ids.map(
    (id) => /* wgsl */ `
@compute @workgroup_size(WG) fn stage_${id}(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  for (var i = 0u; i < step.n_tokens; i++) {
    s_${id}(wid.x, nwg.x, lid, (disp.layer + i) % NLAYERS, 0u);
    storageBarrier(); workgroupBarrier();
  }
}`,
  );
  const layer = layerStages
    ? [/* wgsl */ `
@compute @workgroup_size(WG) fn stage_layer(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  for (var i = 0u; i < step.n_tokens; i++) {
    ${layerStages.map((id) => call(id, 'disp.layer')).join('\n    ')}
  }
}`]
    : [];
  return composeModule(layout, ids, [...entries, ...token, ...layer].join('\n'), false, handoff);
}
