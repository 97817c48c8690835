/**
 * The systems the paper compares, as plain data, with the source of every number
 * (source tags: [paper] kernel-looping paper, [sn40l] SN40L
 * paper, [later] successor paper / SambaNova talks, [derived] arithmetic, [fit] calibration.ts,
 * [assumed] not published, chosen here; override it).
 */
import { CALIBRATED } from './calibrated.ts';
import type { SyncCosts, SystemSpec } from './types.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

// ---------------------------------------------------------------------------------------------
// SN40L, per socket
// ---------------------------------------------------------------------------------------------

export const SN40L_SOCKET = {
  /** Peak BF16, FLOP/s [sn40l]. */
  peakFlops: 638e12,
  /** "90% of units busy" in a fused decoder [sn40l]; used as the compute efficiency. */
  computeEfficiency: 0.9,
  /**
   * HBM bandwidth, bytes/s: 1.6 TB/s [later, Hot Chips], the figure the kernel-looping-era
   * comparisons use (16 sockets = 25.6 TB/s). The SN40L paper's table says 1.8, its text ~2.
   */
  hbmBandwidth: 1.6e12,
  /** In-kernel HBM efficiency of a fused decoder: about 85% [sn40l]. */
  inKernelMemEfficiency: 0.85,
  /** HBM capacity: 64 GiB [sn40l]. */
  hbmCapacity: 64 * GiB,
  /** On-chip SRAM: 520 MiB [sn40l]. */
  sram: 520 * MiB,
  /** DDR bandwidth, bytes/s: 100 GB/s [Hot Chips] (the SN40L paper says 200); T13 agrees with 100. */
  ddrBandwidth: 100e9,
} as const;

/** An SN40L system of `sockets` sockets, tensor-parallel over all of them. */
export function sn40l(sockets: number, overrides: Partial<SystemSpec> = {}): SystemSpec {
  return {
    name: `SN40L-${sockets}`,
    devices: sockets,
    peakFlopsPerDevice: SN40L_SOCKET.peakFlops,
    computeEfficiency: SN40L_SOCKET.computeEfficiency,
    memBandwidthPerDevice: SN40L_SOCKET.hbmBandwidth,
    inKernelMemEfficiency: SN40L_SOCKET.inKernelMemEfficiency,
    memCapacityPerDevice: SN40L_SOCKET.hbmCapacity,
    sramPerDevice: SN40L_SOCKET.sram,
    spillBandwidthPerDevice: SN40L_SOCKET.ddrBandwidth,
    ...overrides,
  };
}

/**
 * SN40L synchronization, hardware-orchestrated launches (the production setting).
 * The per-boundary cost holds launch + fill/drain together: the two are paid once per call in
 * every mode, so the published speedups cannot separate them ([fit], launchPerCall = 0 here).
 */
export const SN40L_SYNC: SyncCosts = {
  launchPerCall: 0,
  fillDrainPerBoundary: CALIBRATED.snBoundary, // [fit]
  // [assumed] the all-reduce is a stage of the fused dataflow kernel and overlaps the weight
  // stream; the published figures do not separate it from the host term. Set it to test.
  allReducePerCall: 0,
  allReducesPerLayer: 2, // Megatron tensor parallelism: after attention and after the FFN
  hostPerStep: CALIBRATED.snHostPerStep, // [fit]
  hostIssuePerCall: 0,
};

/** SN40L with host-orchestrated launches (T12: hardware orchestration speeds decode 1.4x-8x [sn40l]). */
export const SN40L_HOST_ORCHESTRATED_SYNC: SyncCosts = {
  ...SN40L_SYNC,
  hostIssuePerCall: CALIBRATED.snHostIssuePerCall, // [fit]
};

// ---------------------------------------------------------------------------------------------
// DGX H100, per GPU (the paper's comparison system: 8 GPUs, 8000 TFLOPS, 24 TB/s [later])
// ---------------------------------------------------------------------------------------------

export const H100_GPU = {
  /** 8000 TFLOPS BF16 over 8 GPUs [later] (dense spec 989 per GPU gives the 295 ridge of T3). */
  peakFlops: 1000e12,
  /** [assumed] compute efficiency of a fused kernel. */
  computeEfficiency: 0.9,
  /** 24 TB/s over 8 GPUs [later] (spec sheet: 3.35 TB/s per GPU). */
  hbmBandwidth: 3.0e12,
  /** [assumed] in-kernel bandwidth efficiency, taken equal to SN40L's 85%. */
  inKernelMemEfficiency: 0.85,
  /** 80 GB per GPU (spec sheet). */
  hbmCapacity: 80e9,
} as const;

export function dgxH100(overrides: Partial<SystemSpec> = {}): SystemSpec {
  return {
    name: 'DGX-H100',
    devices: 8,
    peakFlopsPerDevice: H100_GPU.peakFlops,
    computeEfficiency: H100_GPU.computeEfficiency,
    memBandwidthPerDevice: H100_GPU.hbmBandwidth,
    inKernelMemEfficiency: H100_GPU.inKernelMemEfficiency,
    memCapacityPerDevice: H100_GPU.hbmCapacity,
    ...overrides,
  };
}

export const DGX_H100: SystemSpec = dgxH100();

/** DGX H100 with TensorRT-LLM: one launch + synchronization per kernel, NCCL all-reduces. */
export const DGX_H100_SYNC: SyncCosts = {
  launchPerCall: CALIBRATED.dgxPerCall, // [fit] T4: 300 tokens/s for Llama-3.1-8B at 4K
  fillDrainPerBoundary: 0, // folded into launchPerCall on a GPU
  allReducePerCall: 8e-6, // [assumed] small-message NCCL all-reduce over NVLink, order 5-10 us
  allReducesPerLayer: 2,
  hostPerStep: 0, // [assumed] CUDA-graph replay; host work overlaps the GPU
  hostIssuePerCall: 0,
};

// ---------------------------------------------------------------------------------------------
// Named systems of the CLI and the JSON
// ---------------------------------------------------------------------------------------------

export type SystemName = `SN40L-${number}` | 'DGX-H100';

export interface NamedSystem {
  system: SystemSpec;
  sync: SyncCosts;
}

export function namedSystem(name: string): NamedSystem {
  if (name === 'DGX-H100') return { system: DGX_H100, sync: DGX_H100_SYNC };
  const m = /^SN40L-(\d+)$/.exec(name);
  if (m) return { system: sn40l(Number(m[1])), sync: SN40L_SYNC };
  throw new Error(`unknown system "${name}"`);
}

// ---------------------------------------------------------------------------------------------
// Published throughputs (checks, not inputs)
// ---------------------------------------------------------------------------------------------

export interface PublishedThroughput {
  model: string;
  system: string;
  context: number;
  batch: number;
  tokensPerSecond: number;
  source: string;
}

/** SN40L paper, 16 sockets, 8K context, tokens/s per user [sn40l]. 70B and 405B use speculative decoding. */
export const PUBLISHED: readonly PublishedThroughput[] = [
  { model: 'llama-3.1-8b', system: 'SN40L-16', context: 8192, batch: 1, tokensPerSecond: 1042, source: '[sn40l]' },
  { model: 'llama-3.1-70b', system: 'SN40L-16', context: 8192, batch: 1, tokensPerSecond: 457, source: '[sn40l]' },
  { model: 'llama-3.1-405b', system: 'SN40L-16', context: 8192, batch: 1, tokensPerSecond: 129, source: '[sn40l]' },
  { model: 'llama-3.1-8b', system: 'DGX-H100', context: 4096, batch: 1, tokensPerSecond: 300, source: '[later] TensorRT-LLM' },
];
