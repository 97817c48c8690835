/**
 * The in-memory model every loader produces and every executor consumes.
 *
 * Conventions (whatever the file format on disk):
 * - Matrices are row-major [out, in]: a Float32Array, or a PackedMatrix holding the file's own
 *   16-bit or block-quantized encoding (kept packed on the device, dequantized inside kernels).
 * - RoPE rotates ADJACENT pairs (2i, 2i+1) inside each head, as llama2.c and GGUF do.
 *   Loaders of Hugging Face checkpoints (rotate_half) un-permute wq/wk (and bq/bk) rows on load.
 * - The FFN is SwiGLU: out = w2 · (silu(w1 · x) * (w3 · x)); w1 = gate, w3 = up, w2 = down.
 */

export interface ModelConfig {
  /** Model width (hidden size). */
  dim: number;
  /** FFN inner size. */
  hiddenDim: number;
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (GQA when < nHeads). */
  nKvHeads: number;
  /** Per-head size; usually dim / nHeads, but configs may set it (q width = nHeads * headDim). */
  headDim: number;
  vocabSize: number;
  /** Context length the model supports (positions 0 .. seqLen-1). */
  seqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** RoPE base frequency. */
  ropeTheta: number;
  /** Qwen2-style q/k/v biases present. */
  attentionBias: boolean;
  /** Classifier shares the embedding matrix. */
  tiedEmbeddings: boolean;
  /** Token ids. */
  bosId: number;
  eosId: number;
  /** Every end-of-sequence id when the model has several (Hugging Face eos_token_id lists); eosId is the first. */
  eosIds?: number[];
}

/** Weight encodings kloop keeps as they are (ggml's block layouts for the quantized ones). */
export type WeightType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_k' | 'q5_k' | 'q6_k';

/**
 * A matrix [rows, cols] in a packed encoding: `data` holds rows * (cols / blockElems) blocks of
 * blockBytes each (see FORMATS in quant.ts), row after row, byte for byte as ggml stores them.
 * f16/bf16 are little-endian 16-bit values (blocks of one).
 */
export interface PackedMatrix {
  readonly type: Exclude<WeightType, 'f32'>;
  readonly rows: number;
  readonly cols: number;
  readonly data: Uint8Array;
}

/** A weight matrix: float32 values, or a packed encoding. */
export type Matrix = Float32Array | PackedMatrix;

export interface LayerWeights {
  attnNorm: Float32Array; // (dim)
  wq: Matrix; // (nHeads * headDim, dim)
  wk: Matrix; // (nKvHeads * headDim, dim)
  wv: Matrix; // (nKvHeads * headDim, dim)
  wo: Matrix; // (dim, nHeads * headDim)
  bq?: Float32Array; // (nHeads * headDim), only when attentionBias
  bk?: Float32Array; // (nKvHeads * headDim)
  bv?: Float32Array; // (nKvHeads * headDim)
  ffnNorm: Float32Array; // (dim)
  w1: Matrix; // gate (hiddenDim, dim)
  w2: Matrix; // down (dim, hiddenDim)
  w3: Matrix; // up (hiddenDim, dim)
}

export interface ModelWeights {
  tokEmb: Matrix; // (vocabSize, dim)
  layers: LayerWeights[]; // (nLayers)
  finalNorm: Float32Array; // (dim)
  /** Classifier (vocabSize, dim); the same array as tokEmb when tiedEmbeddings. */
  wcls: Matrix;
}

/** Text <-> ids. One implementation: tokenizer.json through @huggingface/tokenizers. */
export interface Tokenizer {
  /** Ids of `text`, with BOS first when `bos` (default true). An empty text is [BOS]. */
  encode(text: string, options?: { bos?: boolean }): number[];
  /** Text of `ids` (special tokens skipped). */
  decode(ids: number[]): string;
  /**
   * The text that `id` adds when it follows `prev` (streaming output). Handles the
   * sentencepiece leading space after BOS and byte-fallback tokens.
   */
  decodeStep(prev: number, id: number): string;
  /**
   * Optional: the text decodeStep still holds back at the end of a stream (an incomplete
   * multi-byte UTF-8 sequence split over byte tokens, as U+FFFD); ends the stream.
   */
  flush?(): string;
  readonly vocabSize: number;
  /** The tokenizer.json text (what `kloop convert` writes). */
  toJSON(): string;
}

export type ModelFormat = 'llama2c' | 'gguf' | 'hf' | 'synthetic';

export interface LoadedModel {
  /** Short name, e.g. "stories260K". */
  name: string;
  /** Where it came from (path, URL) for messages. */
  source: string;
  format: ModelFormat;
  config: ModelConfig;
  weights: ModelWeights;
  tokenizer: Tokenizer;
}
