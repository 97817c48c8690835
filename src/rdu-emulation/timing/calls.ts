/**
 * Call structure per decode step: how many calls (kernel launches) and how many
 * synchronization boundaries (pipeline fill/drain + activation round trip) one token costs in
 * each execution mode.
 *
 * For kloop's own executors the engine's schedule (src/engine/schedule.ts) is the authority: the
 * WebGPU device model (src/rdu-emulation/device-model) counts calls from it, and any caller can
 * pass such counts through the optional `fromSchedule` argument, which overrides the defaults
 * below. The paper's systems use the paper's counts (docs kernel-looping.md, [later]):
 * - per-op: 10 kernels per layer (TensorRT-LLM style) + embedding, classifier, sampling
 *   -> 10 L + 3 (323 for Llama-3.1-8B; the paper rounds to "about 320" = 10 x 32).
 * - per-layer: one fused kernel per layer + 3 -> L + 3 (35 for Llama-3.1-8B).
 * - looped: embedding, ONE looped decoder call, classifier, sampling -> 4.
 * Every call is one boundary: a call ends with a drain and the next starts with a fill. Inside
 * the looped call the layer-to-layer transitions are pipelined and cost no boundary.
 */

export type ExecutionMode = 'per-op' | 'per-layer' | 'looped';

export const EXECUTION_MODES: readonly ExecutionMode[] = ['per-op', 'per-layer', 'looped'];

export interface CallStructure {
  mode: ExecutionMode;
  /** Calls (launches) per decode step. */
  callsPerToken(nLayers: number): number;
  /** Synchronization boundaries (fill + drain, activation round trip) per decode step. */
  boundariesPerToken(nLayers: number): number;
}

/** Kernels per decoder layer in per-op mode (TensorRT-LLM style, per the paper). */
export const PER_OP_KERNELS_PER_LAYER = 10;
/** Calls outside the decoder stack: embedding, classifier, sampling. */
export const NON_DECODER_CALLS = 3;

/**
 * The call structure of `mode`. `fromSchedule` (the engine's schedule) overrides the default
 * count; boundaries then equal calls (one boundary per call).
 */
export function callStructureFor(mode: ExecutionMode, fromSchedule?: { callsPerToken: number }): CallStructure {
  const defaults: Record<ExecutionMode, (nLayers: number) => number> = {
    'per-op': (n) => PER_OP_KERNELS_PER_LAYER * n + NON_DECODER_CALLS,
    'per-layer': (n) => n + NON_DECODER_CALLS,
    looped: () => 1 + NON_DECODER_CALLS,
  };
  if (!(mode in defaults)) throw new Error(`unknown execution mode "${String(mode)}"`);
  const calls = fromSchedule ? () => fromSchedule.callsPerToken : defaults[mode];
  return { mode, callsPerToken: calls, boundariesPerToken: calls };
}
