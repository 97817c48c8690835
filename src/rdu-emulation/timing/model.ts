/**
 * The analytical decode model: time per decode step = time the kernels stream memory (or
 * compute) + synchronization time. Everything it needs comes in as plain data (types.ts), so
 * the same equations serve SN40L, DGX H100 and a measured WebGPU device.
 *
 *   bytes/step   = W + B * KV(ctx)                       W: weight bytes, KV: one sequence's cache
 *   FLOPs/step   = B * F(ctx)                            F: FLOPs per token (a FlopConvention)
 *   t_mem        = bytes/step / (D * BW * eta)           eta: in-kernel bandwidth efficiency
 *   t_compute    = FLOPs/step / (D * peak * eta_c)
 *   t_kernel     = max(t_mem, t_compute)
 *   t_sync       = calls * t_launch + boundaries * t_fill_drain
 *                + [D > 1] * L * allReducesPerLayer * t_allreduce + t_host
 *   t_step       = max(t_kernel + t_sync - t_host, calls * t_issue) + t_host
 *                  (t_issue: host-orchestrated issue time per call, overlapped with the device)
 *   tokens/s     = B / t_step
 *   roofline     = B / max(bytes/step / (D * BW), FLOPs/step / (D * peak))
 *   % of peak    = tokens/s / roofline
 * Weights beyond the devices' HBM spill to the second tier (SN40L DDR) and are read from it in
 * parallel with HBM: t_mem = max(hbmPart / (D BW eta), spillPart / (D BW_spill)).
 */
import { callStructureFor, type CallStructure, type ExecutionMode } from './calls.ts';
import {
  DEFAULT_FLOP_CONVENTION,
  flopsPerToken,
  kvBytes,
  paramCounts,
  weightBytes,
  weightBytesRead,
  type WeightReadConvention,
} from './flops.ts';
import type { FlopConvention, ModelShape, SyncCosts, SystemSpec, Workload } from './types.ts';

export const GiB = 2 ** 30;

export interface PredictOptions {
  flopConvention?: FlopConvention;
  weightRead?: WeightReadConvention;
}

export interface DecodePrediction {
  mode: ExecutionMode;
  system: string;
  callsPerToken: number;
  boundariesPerToken: number;
  /** Bytes streamed per decode step (all devices together). */
  bytesPerStep: number;
  /** FLOPs per decode step (all sequences of the batch). */
  flopsPerStep: number;
  /** Which roof binds inside the kernels. */
  bound: 'memory' | 'compute';
  /** Resident bytes (weights + KV) exceed the devices' HBM; the excess is read from the spill tier. */
  spills: boolean;
  /** Resident bytes exceed HBM and there is no spill tier: the prediction is not realisable. */
  doesNotFit: boolean;
  /** Seconds per step broken down (syncSeconds excludes host-issue waiting; see secondsPerStep). */
  kernelSeconds: number;
  launchSeconds: number;
  fillDrainSeconds: number;
  allReduceSeconds: number;
  hostSeconds: number;
  syncSeconds: number;
  secondsPerStep: number;
  /** Tokens per second, all sequences together (= per user at batch 1). */
  tokensPerSecond: number;
  tokensPerSecondPerUser: number;
  rooflineTokensPerSecond: number;
  percentOfPeak: number;
  /** Achieved bytes/s over the devices' aggregate HBM bandwidth. */
  bandwidthUtilisation: number;
  /** Seconds to generate workload.outputTokens (context grows; evaluated at the mid context). */
  generationSeconds: number;
}

interface StepTimes {
  bytes: number;
  flops: number;
  kernel: number;
  roofline: number;
  bound: 'memory' | 'compute';
  spills: boolean;
  doesNotFit: boolean;
}

function stepTimes(shape: ModelShape, batch: number, context: number, sys: SystemSpec, o: PredictOptions): StepTimes {
  const D = sys.devices;
  const bytes = weightBytesRead(shape, o.weightRead) + batch * kvBytes(shape, context);
  const flops = batch * flopsPerToken(shape, context, o.flopConvention ?? DEFAULT_FLOP_CONVENTION);
  const resident = weightBytes(shape) + batch * kvBytes(shape, context);
  const excess = Math.max(0, resident - D * sys.memCapacityPerDevice);
  const spills = excess > 0 && sys.spillBandwidthPerDevice !== undefined;
  const doesNotFit = excess > 0 && !spills;
  // The spilled share of what is read each step comes from the second tier.
  const spillRead = spills ? bytes * (excess / resident) : 0;
  const hbmRead = bytes - spillRead;
  const spillTime = spills ? spillRead / (D * sys.spillBandwidthPerDevice!) : 0;
  const memIdeal = Math.max(hbmRead / (D * sys.memBandwidthPerDevice), spillTime);
  const memKernel = Math.max(hbmRead / (D * sys.memBandwidthPerDevice * sys.inKernelMemEfficiency), spillTime);
  const computeIdeal = flops / (D * sys.peakFlopsPerDevice);
  const computeKernel = computeIdeal / sys.computeEfficiency;
  return {
    bytes,
    flops,
    kernel: Math.max(memKernel, computeKernel),
    roofline: Math.max(memIdeal, computeIdeal),
    bound: memKernel >= computeKernel ? 'memory' : 'compute',
    spills,
    doesNotFit,
  };
}

/** Synchronization seconds per decode step (or per prefill pass). */
export function syncSeconds(
  shape: ModelShape,
  sys: SystemSpec,
  sync: SyncCosts,
  calls: CallStructure,
): { launch: number; fillDrain: number; allReduce: number; host: number; issue: number; total: number } {
  const launch = calls.callsPerToken(shape.nLayers) * sync.launchPerCall;
  const fillDrain = calls.boundariesPerToken(shape.nLayers) * sync.fillDrainPerBoundary;
  const allReduce = sys.devices > 1 ? shape.nLayers * sync.allReducesPerLayer * sync.allReducePerCall : 0;
  const host = sync.hostPerStep;
  const issue = calls.callsPerToken(shape.nLayers) * (sync.hostIssuePerCall ?? 0);
  return { launch, fillDrain, allReduce, host, issue, total: launch + fillDrain + allReduce + host };
}

/** One step: the device's busy time against the host's issue time, plus the serial host time. */
function stepSeconds(kernel: number, s: ReturnType<typeof syncSeconds>): number {
  return Math.max(kernel + s.launch + s.fillDrain + s.allReduce, s.issue) + s.host;
}

/** Predict one decode step of `shape` on `system` with the synchronization terms `sync`. */
export function predictDecode(
  shape: ModelShape,
  workload: Workload,
  system: SystemSpec,
  sync: SyncCosts,
  callStructure: CallStructure,
  options: PredictOptions = {},
): DecodePrediction {
  checkInputs(shape, workload, system);
  const { batch, context, outputTokens } = workload;
  const t = stepTimes(shape, batch, context, system, options);
  const s = syncSeconds(shape, system, sync, callStructure);
  const secondsPerStep = stepSeconds(t.kernel, s);
  const tokensPerSecond = batch / secondsPerStep;
  const rooflineTokensPerSecond = batch / t.roofline;
  const mid = stepTimes(shape, batch, context + outputTokens / 2, system, options);
  return {
    mode: callStructure.mode,
    system: system.name,
    callsPerToken: callStructure.callsPerToken(shape.nLayers),
    boundariesPerToken: callStructure.boundariesPerToken(shape.nLayers),
    bytesPerStep: t.bytes,
    flopsPerStep: t.flops,
    bound: t.bound,
    spills: t.spills,
    doesNotFit: t.doesNotFit,
    kernelSeconds: t.kernel,
    launchSeconds: s.launch,
    fillDrainSeconds: s.fillDrain,
    allReduceSeconds: s.allReduce,
    hostSeconds: s.host,
    syncSeconds: s.total,
    secondsPerStep,
    tokensPerSecond,
    tokensPerSecondPerUser: tokensPerSecond / batch,
    rooflineTokensPerSecond,
    percentOfPeak: (100 * tokensPerSecond) / rooflineTokensPerSecond,
    bandwidthUtilisation: t.bytes / secondsPerStep / (system.devices * system.memBandwidthPerDevice),
    generationSeconds: outputTokens * stepSeconds(mid.kernel, s),
  };
}

/** Convenience: predictDecode with the default call structure of `mode`. */
export function predictMode(
  shape: ModelShape,
  workload: Workload,
  system: SystemSpec,
  sync: SyncCosts,
  mode: ExecutionMode,
  options: PredictOptions = {},
): DecodePrediction {
  return predictDecode(shape, workload, system, sync, callStructureFor(mode), options);
}

/** Looping on vs off: per-layer time over looped time (> 1 means looping helps). */
export function loopingSpeedup(
  shape: ModelShape,
  workload: Workload,
  system: SystemSpec,
  sync: SyncCosts,
  options: PredictOptions = {},
): number {
  const off = predictMode(shape, workload, system, sync, 'per-layer', options);
  const on = predictMode(shape, workload, system, sync, 'looped', options);
  return on.tokensPerSecond / off.tokensPerSecond;
}

// ---------------------------------------------------------------------------------------------
// Prefill (for the orchestration check T12): one pass over `promptTokens` positions.
// ---------------------------------------------------------------------------------------------

export interface PrefillPrediction {
  flops: number;
  kernelSeconds: number;
  syncSeconds: number;
  seconds: number;
}

/** Prefill of `promptTokens` positions in one pass (causal attention: average context P/2). */
export function predictPrefill(
  shape: ModelShape,
  promptTokens: number,
  system: SystemSpec,
  sync: SyncCosts,
  callStructure: CallStructure,
  options: PredictOptions = {},
): PrefillPrediction {
  const c = options.flopConvention ?? DEFAULT_FLOP_CONVENTION;
  const flops = promptTokens * flopsPerToken(shape, promptTokens / 2, c);
  const bytes = weightBytesRead(shape, options.weightRead) + kvBytes(shape, promptTokens);
  const D = system.devices;
  const kernelSeconds = Math.max(
    flops / (D * system.peakFlopsPerDevice * system.computeEfficiency),
    bytes / (D * system.memBandwidthPerDevice * system.inKernelMemEfficiency),
  );
  const s = syncSeconds(shape, system, sync, callStructure);
  return { flops, kernelSeconds, syncSeconds: s.total, seconds: stepSeconds(kernelSeconds, s) };
}

// ---------------------------------------------------------------------------------------------
// Table 1 of the paper: the per-model characterisation
// ---------------------------------------------------------------------------------------------

export interface ModelCharacterisation {
  name: string;
  params: number;
  /** Weight bytes in GiB (the paper's "GB" are GiB). */
  paramsGiB: number;
  /** KV cache of the whole batch at `context`, GiB. */
  kvGiB: number;
  /** FLOPs per token (per sequence), in units of 1e9. */
  gflopsPerToken: number;
  /** Bytes read per token (per decode step at batch 1), GiB. */
  gibPerToken: number;
  /** FLOPs per decode step over bytes per decode step (true units: FLOP/byte). */
  flopsPerByte: number;
  /** The ridge point of `system` (peak FLOP/s over bandwidth), FLOP/byte. */
  ridgeFlopsPerByte: number;
  memoryBoundOnH100: boolean;
}

/** Table-1-style row. `ridgeSystem` is the system whose ridge decides "memory-bound" (DGX H100). */
export function characterise(
  shape: ModelShape,
  workload: Workload,
  ridgeSystem: SystemSpec,
  options: PredictOptions = {},
): ModelCharacterisation {
  const params = paramCounts(shape).total;
  const bytes = weightBytesRead(shape, options.weightRead) + workload.batch * kvBytes(shape, workload.context);
  const flops = workload.batch * flopsPerToken(shape, workload.context, options.flopConvention ?? DEFAULT_FLOP_CONVENTION);
  const ridge = ridgeSystem.peakFlopsPerDevice / ridgeSystem.memBandwidthPerDevice;
  const intensity = flops / bytes;
  return {
    name: shape.name,
    params,
    paramsGiB: weightBytes(shape) / GiB,
    kvGiB: (workload.batch * kvBytes(shape, workload.context)) / GiB,
    gflopsPerToken: flops / workload.batch / 1e9,
    gibPerToken: bytes / GiB,
    flopsPerByte: intensity,
    ridgeFlopsPerByte: ridge,
    memoryBoundOnH100: intensity < ridge,
  };
}

// ---------------------------------------------------------------------------------------------
// Small derived quantities used by the checks
// ---------------------------------------------------------------------------------------------

/** Achieved bandwidth share of a MEASURED throughput (T4: 300 tokens/s on DGX H100 -> 21%). */
export function bandwidthUtilisation(
  measuredTokensPerSecond: number,
  shape: ModelShape,
  workload: Workload,
  system: SystemSpec,
  options: PredictOptions = {},
): number {
  const bytes = weightBytesRead(shape, options.weightRead) + workload.batch * kvBytes(shape, workload.context);
  return ((measuredTokensPerSecond / workload.batch) * bytes) / (system.devices * system.memBandwidthPerDevice);
}

/** Seconds to copy the whole model from the spill tier (DDR) into HBM on all devices (T13). */
export function modelSwitchSeconds(shape: ModelShape, system: SystemSpec): number {
  if (system.spillBandwidthPerDevice === undefined) throw new Error(`${system.name} has no spill tier`);
  return weightBytes(shape) / (system.devices * system.spillBandwidthPerDevice);
}

export interface MeasurementCheck {
  measuredTokensPerSecond: number;
  rooflineTokensPerSecond: number;
  /** The measurement is above what plain decode can reach on this system. */
  exceedsPlainDecodeRoofline: boolean;
  /** The measurement needs speculative decoding (or another multi-token technique). */
  needsSpeculativeDecoding: boolean;
  note: string;
}

/** Compare a published throughput with the plain-decode roofline of the same configuration (T7). */
export function checkMeasurement(prediction: DecodePrediction, measuredTokensPerSecond: number): MeasurementCheck {
  const roof = prediction.rooflineTokensPerSecond;
  const exceeds = measuredTokensPerSecond > roof;
  return {
    measuredTokensPerSecond,
    rooflineTokensPerSecond: roof,
    exceedsPlainDecodeRoofline: exceeds,
    needsSpeculativeDecoding: exceeds,
    note: exceeds
      ? `published ${fmt(measuredTokensPerSecond)} tokens/s exceeds the plain-decode roofline of ` +
        `${fmt(roof)} tokens/s: it needs speculative decoding (several tokens per weight pass); ` +
        `this plain-decode model predicts ${fmt(prediction.tokensPerSecond)}`
      : `published ${fmt(measuredTokensPerSecond)} tokens/s is within the plain-decode roofline ` +
        `(${fmt(roof)}); model predicts ${fmt(prediction.tokensPerSecond)}`,
  };
}

function fmt(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toPrecision(3);
}

function checkInputs(shape: ModelShape, w: Workload, sys: SystemSpec): void {
  const positive: Array<[string, number]> = [
    ['nLayers', shape.nLayers],
    ['hidden', shape.hidden],
    ['nHeads', shape.nHeads],
    ['nKvHeads', shape.nKvHeads],
    ['headDim', shape.headDim],
    ['ffn', shape.ffn],
    ['vocab', shape.vocab],
    ['bytesPerParam', shape.bytesPerParam],
    ['batch', w.batch],
    ['devices', sys.devices],
    ['memBandwidthPerDevice', sys.memBandwidthPerDevice],
    ['peakFlopsPerDevice', sys.peakFlopsPerDevice],
    ['inKernelMemEfficiency', sys.inKernelMemEfficiency],
    ['computeEfficiency', sys.computeEfficiency],
  ];
  for (const [name, v] of positive) {
    if (!(Number.isFinite(v) && v > 0)) throw new Error(`timing model: ${name} must be > 0 (got ${v})`);
  }
  if (!(Number.isFinite(w.context) && w.context >= 0)) throw new Error(`timing model: context must be >= 0 (got ${w.context})`);
  if (!(Number.isFinite(w.outputTokens) && w.outputTokens >= 0)) {
    throw new Error(`timing model: outputTokens must be >= 0 (got ${w.outputTokens})`);
  }
}
