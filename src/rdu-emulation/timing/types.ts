/**
 * Plain-data inputs of the analytical decode timing model. Every number here is a named
 * parameter a caller can override; nothing is hidden inside the equations (model.ts).
 *
 * Units: bytes, FLOPs, seconds, bytes/second, FLOP/second. Never GiB or microseconds inside
 * the model; the CLI converts for display.
 */

/** The shape of a decoder-only transformer (Llama / Mistral / Qwen2 family: GQA + SwiGLU). */
export interface ModelShape {
  /** Short name, e.g. "llama-3.1-8b". */
  name: string;
  nLayers: number;
  /** Hidden size (model width). */
  hidden: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (GQA when < nHeads). */
  nKvHeads: number;
  /** Per-head size (q width = nHeads * headDim). */
  headDim: number;
  /** FFN inner size (SwiGLU: gate, up, down). */
  ffn: number;
  vocab: number;
  /** Bytes per weight (BF16 = 2). */
  bytesPerParam: number;
  /** Bytes per KV-cache element; defaults to bytesPerParam. */
  kvBytesPerElement?: number;
  /** Classifier shares the embedding matrix (counted once). */
  tiedEmbeddings: boolean;
  /** Qwen2-style q/k/v biases. */
  attentionBias?: boolean;
}

/** What is being decoded. */
export interface Workload {
  /** Sequences decoded together; one decode step produces `batch` tokens. */
  batch: number;
  /** Tokens already in the KV cache when the token is produced (Table 1's "context length"). */
  context: number;
  /** Tokens generated per request (for the generation-time total). */
  outputTokens: number;
}

/**
 * A machine as the model sees it: N identical devices (SN40L sockets, H100 GPUs, one WebGPU
 * adapter) splitting every layer by tensor parallelism. Memory and compute figures are PER
 * DEVICE; the model multiplies by `devices`.
 */
export interface SystemSpec {
  /** Display name, e.g. "SN40L-16", "DGX-H100". */
  name: string;
  /** Devices (sockets / GPUs) that split each layer (tensor parallelism degree). */
  devices: number;
  /** Peak dense BF16 FLOP/s per device. */
  peakFlopsPerDevice: number;
  /** Fraction of peak FLOP/s a fused kernel reaches when compute-bound. */
  computeEfficiency: number;
  /** Main-memory (HBM) bandwidth per device, bytes/s. The roofline uses this. */
  memBandwidthPerDevice: number;
  /** Fraction of memBandwidth a kernel streams at between its boundaries (in-kernel efficiency). */
  inKernelMemEfficiency: number;
  /** Main-memory (HBM) capacity per device, bytes. */
  memCapacityPerDevice: number;
  /** On-chip SRAM per device, bytes (informational: the looped kernel's buffers must fit). */
  sramPerDevice?: number;
  /** Second-tier memory (SN40L DDR) bandwidth per device, bytes/s; weights beyond HBM spill here. */
  spillBandwidthPerDevice?: number;
}

/**
 * Synchronization terms: what a call boundary, a layer's all-reduce and the host cost per
 * decode step. These are what kernel looping removes (or does not).
 */
export interface SyncCosts {
  /** Per call: program load + argument load + start, seconds. */
  launchPerCall: number;
  /**
   * Per synchronization boundary: pipeline fill and drain plus the activation round trip
   * through memory, seconds. Not published for SN40L; calibrated (calibration.ts).
   */
  fillDrainPerBoundary: number;
  /** Exposed (not overlapped) latency of one tensor-parallel all-reduce, seconds; 0 on 1 device. */
  allReducePerCall: number;
  /** All-reduces per layer under tensor parallelism (Megatron: after attention and after FFN). */
  allReducesPerLayer: number;
  /** Host time per decode step (sampling hand-off, scheduling, the per-token round trip), seconds. */
  hostPerStep: number;
  /**
   * Host-orchestrated launch: seconds the host needs to issue one call. Issuing overlaps device
   * execution, so a step takes max(device busy time, calls * hostIssuePerCall): the classic
   * launch-bound regime. 0 (default) = hardware-orchestrated (SN40L) or pre-recorded launches.
   */
  hostIssuePerCall?: number;
}

/**
 * How FLOPs per token are counted. Table 1's 20 GFLOPs for Llama-3.1-8B is not what the plain
 * 2-FLOPs-per-parameter count gives (about 18), so the convention is a parameter.
 */
export interface FlopConvention {
  name: string;
  /** FLOPs per weight parameter per token (2 = one multiply-add). */
  flopsPerParam: number;
  /** Count the input embedding table's parameters (a gather, no arithmetic) in the weight FLOPs. */
  countEmbedding: boolean;
  /**
   * Attention FLOPs per layer per cached position per query-head dimension:
   * attention = attnFactor * nLayers * context * nHeads * headDim.
   * 4 = QK^T and AV as multiply-adds.
   */
  attnFactor: number;
}
