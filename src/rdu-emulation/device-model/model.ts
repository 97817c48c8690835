/**
 * The WebGPU device model: the SN40L timing model's equations (../timing/model.ts) with a
 * WebGPU adapter's own parameters, each measured by a microbenchmark (microbench.ts).
 *
 * Mapping onto the timing model (one device, no tensor parallelism):
 *   memBandwidthPerDevice   copy bandwidth (bytes read + written per second)
 *   inKernelMemEfficiency   bytes per token / (copy rate x the summed stage times of one token):
 *                           the share of the copy rate the engine's kernels reach on this adapter,
 *                           from the stage microbenchmarks (per-op: a workgroup per work item;
 *                           fused: the discovered workgroups). On CPU adapters the engine's kernels
 *                           are far from streaming bound, so the measured stage times, not bytes /
 *                           bandwidth, carry the kernel term.
 *   launchPerCall           seconds per dispatch (+ occupancy discovery for a fused dispatch)
 *   fillDrainPerBoundary    seconds per grid barrier
 *   hostPerStep             submit round trip / K (K tokens per submit)
 * and the call structure comes from the engine's schedule: per token,
 *   per-op      dispatchesPerStep(schedule, 'per-op') dispatches, no barrier
 *   per-layer   L + 3 dispatches (L of them discover), the layer kernels' grid barriers
 *   looped:K    1/K dispatch (it discovers), the looped kernel's barriers per token
 * so that
 *   t_token = bytes / (copyBW * eta) + dispatches * t_dispatch + barriers * t_barrier + t_rt / K,
 * the kernel term being, per mode (modeKernelSeconds): per-op and per-layer the work of a
 * token's per-op or per-layer dispatches in order (over the same dispatches with no work; for
 * per-layer with one fused workgroup, the cold token: the same bodies, see stage-bench.ts);
 * looped:K the running rate plus the cold start (a token in a dispatch of its own) once per K.
 */
import type { StageId } from '../../engine/schedule.ts';
import { kvBytes, weightBytesRead } from '../timing/flops.ts';
import type { ModelConfig } from '../../loader/types.ts';
import { type Schedule, dispatchesPerStep, loopLayers, planBarriers } from '../../engine/schedule.ts';
import { predictDecode, type DecodePrediction } from '../timing/model.ts';
import type { CallStructure } from '../timing/calls.ts';
import type { ModelShape, SyncCosts, SystemSpec } from '../timing/types.ts';
import { shapeFromModelConfig } from '../presets/index.ts';
import type { DeviceMeasurements } from './microbench.ts';

/** The measured parameters of one adapter, plain numbers in SI units. */
export interface DeviceParameters {
  name: string;
  dispatchSeconds: number;
  roundTripSeconds: number;
  copyBytesPerSecond: number;
  /** Engine matvec rate at per-op width (a workgroup per row tile). */
  matvecBytesPerSecond: number;
  /** Engine matvec rate over the workgroups a fused dispatch runs with. */
  fusedMatvecBytesPerSecond: number;
  barrierSeconds: number;
  discoverSeconds: number;
  /**
   * Stage time of one token (seconds): `perOp` and `perLayer` the work of its per-op and
   * per-layer dispatches, `fused` its stages inside a running fused dispatch, `cold` in a
   * dispatch of its own (looped:K's first token of K), and the in-context factor.
   */
  kernelSeconds: { perOp: number; fused: number; cold?: number; perLayer?: number; inContext?: number };
}

/** Stage calls of one token: each layer's stages once per layer, the rest once. */
export function stageCallsPerToken(schedule: Schedule): Map<StageId, number> {
  const calls = new Map<StageId, number>();
  for (const c of schedule.calls) {
    const times = c.kind === 'loop' ? c.layers.length : 1;
    for (const st of c.stages) calls.set(st, (calls.get(st) ?? 0) + times);
  }
  return calls;
}

/**
 * Seconds the stages of one token take at each width, from the stage microbenchmarks: each
 * stage's time, summed over a token's calls, scaled by how much longer the same stages take in
 * a token's order (tokenStagesSeconds over the summed fused times): a stage repeated alone keeps
 * its weights in the CPU's caches, a token walks all of them (lavapipe, stories260K: 1.5x-2x).
 * Per-op's and per-layer's terms are their whole tokens' dispatches where measured
 * (perOpTokenSeconds, perLayerTokenSeconds, as measureDevice does; per-layer's only with several
 * fused workgroups, else modeKernelSeconds gives per-layer the cold token); without the per-op token,
 * per-op is the sum of its stage calls, each timed as a whole dispatch with `launch` (default the
 * tiny-dispatch figure) taken off.
 */
export function stageKernelSeconds(schedule: Schedule, m: DeviceMeasurements, launch = m.dispatchSeconds?.median ?? 0): DeviceParameters['kernelSeconds'] & { inContext: number } {
  let perOp = 0;
  let fused = 0;
  for (const [id, n] of stageCallsPerToken(schedule)) {
    perOp += n * Math.max(0, m.stageSeconds[id].perOp.median - launch);
    fused += n * m.stageSeconds[id].fused.median;
  }
  const ok = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x) && x > 0;
  const token = m.tokenStagesSeconds?.median;
  const inContext = ok(token) && fused > 0 ? token / fused : 1;
  // The whole token measured as the mode runs it, where measured; else the stage sums.
  const seq = m.perOpTokenSeconds?.median;
  const cold = m.tokenColdSeconds?.median;
  const layers = m.perLayerTokenSeconds?.median;
  return { perOp: ok(seq) ? seq : perOp * inContext, fused: fused * inContext, ...(ok(cold) ? { cold } : {}), ...(ok(layers) ? { perLayer: layers } : {}), inContext };
}

/** Stage seconds of one token of mode `m`: looped:K pays the cold start once per K tokens. */
export function modeKernelSeconds(p: DeviceParameters, m: ModeSpec): number {
  const { perOp, fused, cold = fused, perLayer = cold } = p.kernelSeconds;
  if (m.mode === 'per-op') return perOp;
  if (m.mode === 'per-layer') return perLayer;
  return fused + (cold - fused) / m.k;
}

export function deviceParameters(name: string, m: DeviceMeasurements, schedule: Schedule): DeviceParameters {
  return {
    kernelSeconds: stageKernelSeconds(schedule, m),
    name,
    dispatchSeconds: m.dispatchSeconds.median,
    roundTripSeconds: m.roundTripSeconds.median,
    copyBytesPerSecond: m.copyBytesPerSecond.median,
    matvecBytesPerSecond: m.matvecBytesPerSecond.median,
    fusedMatvecBytesPerSecond: m.fusedMatvecBytesPerSecond.median,
    barrierSeconds: m.barrierSeconds.median,
    discoverSeconds: m.discoverSeconds.median,
  };
}

/** One benchmarked configuration: an executor mode and its tokens per dispatch. */
export interface ModeSpec {
  mode: 'per-op' | 'per-layer' | 'looped';
  /** Tokens per dispatch (1 unless looped). */
  k: number;
}

/** Per-token call structure of a mode, from the engine's schedule and the kernels' barrier counts. */
export interface ModeStructure {
  dispatchesPerToken: number;
  /** Dispatches per token that run occupancy discovery (fused kernels with barriers). */
  discoversPerToken: number;
  barriersPerToken: number;
  submitsPerToken: number;
}

/**
 * The call structure of `m` for `schedule`. `barriersPerToken` is the executor's own count
 * (GpuExecutor.gridBarriersPerToken) when known; otherwise derived from the schedule's barrier plan
 * (per-layer; the looped count needs the executor). `workgroups`: the executor's fused width.
 */
export function modeStructure(schedule: Schedule, m: ModeSpec, barriersPerToken?: number, workgroups?: number): ModeStructure {
  // A fused kernel run by ONE workgroup (CPU adapters) skips discovery (compose.ts, SINGLE).
  const s = modeStructureOf(schedule, m, barriersPerToken);
  return workgroups === 1 ? { ...s, discoversPerToken: 0 } : s;
}

function modeStructureOf(schedule: Schedule, m: ModeSpec, barriersPerToken?: number): ModeStructure {
  if (m.mode === 'per-op') {
    return { dispatchesPerToken: dispatchesPerStep(schedule, 'per-op'), discoversPerToken: 0, barriersPerToken: 0, submitsPerToken: 1 };
  }
  if (m.mode === 'per-layer') {
    const withBarriers = schedule.calls.map((c) => planBarriers(c.stages).before.filter(Boolean).length);
    return {
      dispatchesPerToken: dispatchesPerStep(schedule, 'per-layer'),
      discoversPerToken: withBarriers.filter((b) => b > 0).length,
      barriersPerToken: barriersPerToken ?? withBarriers.reduce((a, b) => a + b, 0),
      submitsPerToken: 1,
    };
  }
  const looped = loopLayers(schedule).schedule;
  return {
    dispatchesPerToken: dispatchesPerStep(looped, 'looped') / m.k,
    discoversPerToken: 1 / m.k,
    barriersPerToken: barriersPerToken ?? 0,
    submitsPerToken: 1 / m.k,
  };
}

/**
 * The adapter as a timing-model system (one device) for `mode`'s kernels: the in-kernel
 * efficiency is what makes bytesPerToken / (copy rate x efficiency) equal the measured stage time.
 */
export function deviceSystem(p: DeviceParameters, mode: ModeSpec, bytesPerToken: number): SystemSpec {
  const kernel = modeKernelSeconds(p, mode);
  const rate = bytesPerToken / kernel;
  return {
    name: p.name,
    devices: 1,
    // Decode on these adapters is memory- and boundary-bound; FLOPs are not modelled.
    peakFlopsPerDevice: 1e18,
    computeEfficiency: 1,
    memBandwidthPerDevice: p.copyBytesPerSecond,
    inKernelMemEfficiency: rate / p.copyBytesPerSecond,
    memCapacityPerDevice: Number.MAX_SAFE_INTEGER,
  };
}

/** Synchronization costs of `s` on the adapter: the timing model's SyncCosts. */
export function deviceSync(p: DeviceParameters, s: ModeStructure): SyncCosts {
  const perCall = s.dispatchesPerToken > 0 ? (s.discoversPerToken / s.dispatchesPerToken) * p.discoverSeconds : 0;
  return {
    launchPerCall: p.dispatchSeconds + perCall,
    fillDrainPerBoundary: p.barrierSeconds,
    allReducePerCall: 0,
    allReducesPerLayer: 0,
    hostPerStep: p.roundTripSeconds * s.submitsPerToken,
  };
}

export function deviceCallStructure(m: ModeSpec, s: ModeStructure): CallStructure {
  return { mode: m.mode, callsPerToken: () => s.dispatchesPerToken, boundariesPerToken: () => s.barriersPerToken };
}

/** The model as the timing model sees it: f32 weights and KV cache (4 bytes an element). */
export function deviceShape(cfg: ModelConfig, name: string): ModelShape {
  return { ...shapeFromModelConfig(cfg, name, 4), kvBytesPerElement: 4 };
}

export interface ModePrediction {
  label: string;
  tokensPerSecond: number;
  secondsPerToken: number;
  /** Where the time goes, seconds per token. */
  kernelSeconds: number;
  dispatchSeconds: number;
  barrierSeconds: number;
  roundTripSeconds: number;
  timing: DecodePrediction;
}

/**
 * Predicted decode speed of `m` for a model of config `cfg`, decoding with `meanContext` cached
 * positions on average (the KV read per token).
 */
export function predictMode(
  cfg: ModelConfig,
  name: string,
  p: DeviceParameters,
  m: ModeSpec,
  s: ModeStructure,
  meanContext: number,
): ModePrediction {
  const shape = deviceShape(cfg, name);
  const bytes = weightBytesRead(shape, 'embedding-row-only') + kvBytes(shape, meanContext);
  const timing = predictDecode(
    shape,
    { batch: 1, context: meanContext, outputTokens: 0 },
    deviceSystem(p, m, bytes),
    deviceSync(p, s),
    deviceCallStructure(m, s),
    { weightRead: 'embedding-row-only' },
  );
  return {
    label: modeLabel(m),
    tokensPerSecond: timing.tokensPerSecond,
    secondsPerToken: timing.secondsPerStep,
    kernelSeconds: timing.kernelSeconds,
    dispatchSeconds: timing.launchSeconds,
    barrierSeconds: timing.fillDrainSeconds,
    roundTripSeconds: timing.hostSeconds,
    timing,
  };
}

export function modeLabel(m: ModeSpec): string {
  return m.mode === 'looped' && m.k > 1 ? `looped:${m.k}` : m.mode;
}
