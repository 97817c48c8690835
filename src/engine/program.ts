/**
 * The kernel PROGRAM of each mode, decided from the schedule alone (no GPU objects): the looping
 * pass's result, which kernels exist and their entry points, how wide each dispatch may be, and
 * the grid-barrier plan of the fused kernels. The runner (gpu-executor.ts) compiles it, sizes it
 * to the adapter and runs it.
 */
import type { Handoff } from '../kernels-wgsl/common.wgsl.ts';
import type { ModelConfig } from '../loader/types.ts';
import { loopedModule, perLayerModule, perOpModule, stageItems } from './compose.ts';
import type { Layout } from './layout.ts';
import { type Call, type Schedule, type StageId, buildSchedule, loopLayers } from './schedule.ts';

/** One dispatch of a program: its entry point and the Dispatch uniform (layer, sync slot) it uses. */
export interface ProgramCall {
  entryPoint: string;
  entry: number;
  /** Whether it synchronises workgroups (needs them co-resident). */
  barriers: boolean;
  /** Work items of its widest stage: more workgroups than this have nothing to do. */
  width: number;
}

export interface Program {
  label: 'per-op' | 'per-layer' | 'looped';
  code: string;
  calls: ProgramCall[];
  /** The call whose sync slot occupancy discovery reads. */
  probe: number;
  /** Width of the fused work that repeats (the decoder layer): what occupancy is capped by. */
  widest: number;
  barriersPerToken: number;
}

/** The schedule, and the looping pass run once on it (what the looped mode compiles). */
export function kernelSchedules(cfg: ModelConfig): { schedule: Schedule; looped: Schedule; notes: string[] } {
  const schedule = buildSchedule(cfg);
  const looping = loopLayers(schedule);
  return { schedule, looped: looping.schedule, notes: looping.notes };
}

/** Most work items of any stage: a fused dispatch never needs more workgroups than this. */
export function widest(stages: readonly StageId[], layout: Layout): number {
  return Math.max(...stages.map((s) => stageItems(s, layout)));
}

/** The looped call of the schedule (after the looping pass) and the stages around it. */
export function loopedParts(looped: Schedule): { prologue: StageId[]; loop: Extract<Call, { kind: 'loop' }>; epilogue: StageId[] } {
  const calls = looped.calls;
  const at = calls.findIndex((c) => c.kind === 'loop');
  const loop: Extract<Call, { kind: 'loop' }> =
    at >= 0
      ? (calls[at] as Extract<Call, { kind: 'loop' }>)
      : // A single layer: a loop of one iteration.
        { kind: 'loop', name: 'decoder[0]', stages: (calls.find((c) => c.kind === 'layer') as Call).stages, layers: [0], signature: '' };
  const idx = at >= 0 ? at : calls.findIndex((c) => c.kind === 'layer');
  return {
    prologue: calls.slice(0, idx).flatMap((c) => c.stages),
    loop,
    epilogue: calls.slice(idx + 1).flatMap((c) => c.stages),
  };
}

/** per-op: one dispatch per stage of every call, `op_<stage>`. */
export function perOpProgram(schedule: Schedule, layout: Layout): Program {
  const stages = [...new Set(schedule.calls.flatMap((c) => c.stages))];
  const calls = schedule.calls.flatMap((call, entry) =>
    call.stages.map((s) => ({ entryPoint: `op_${s}`, entry, barriers: false, width: stageItems(s, layout) })),
  );
  return { label: 'per-op', code: perOpModule(layout, stages), calls, probe: 0, widest: 1, barriersPerToken: 0 };
}

/**
 * The fused program of the per-layer or looped mode with the given activation hand-off
 * ('plain' when one workgroup runs it, 'atomic' when several hand activations over).
 */
export function fusedProgram(mode: 'per-layer' | 'looped', kernels: { schedule: Schedule; looped: Schedule }, layout: Layout, handoff: Handoff): Program {
  if (mode === 'per-layer') {
    const calls = kernels.schedule.calls;
    const { code, entries, barriers } = perLayerModule(layout, calls, handoff);
    const layerCall = calls.findIndex((c) => c.kind === 'layer');
    return {
      label: 'per-layer',
      code,
      calls: calls.map((call, i) => ({ entryPoint: entries[i]!, entry: i, barriers: barriers[i]! > 0, width: widest(call.stages, layout) })),
      probe: layerCall,
      widest: widest(calls[layerCall]!.stages, layout),
      barriersPerToken: barriers.reduce((a, b) => a + b, 0),
    };
  }
  const parts = loopedParts(kernels.looped);
  const { code, barriersPerToken } = loopedModule(layout, parts.prologue, parts.loop, parts.epilogue, handoff);
  const all = [...parts.prologue, ...parts.loop.stages, ...parts.epilogue];
  return {
    label: 'looped',
    code,
    calls: [{ entryPoint: 'step_looped', entry: 0, barriers: true, width: widest(all, layout) }],
    probe: 0,
    // Sized by the decoder layer, which runs L times a token, not by the classifier, which runs
    // once: more workgroups than a layer has work only make every grid barrier dearer.
    widest: widest(parts.loop.stages, layout),
    barriersPerToken,
  };
}

/**
 * Workgroups of each call of a fused program run with `groups` workgroups: calls without a
 * barrier need no co-residency, so with atomic hand-off they take as many workgroups as they
 * have work; with plain hand-off (one workgroup) every call takes `groups`.
 */
export function callGroups(p: Program, groups: number, handoff: Handoff, maxGroups: number): number[] {
  return p.calls.map((c) => (c.barriers || handoff === 'plain' ? groups : Math.min(c.width, maxGroups)));
}
