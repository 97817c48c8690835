/**
 * The in-memory model every loader produces and every executor consumes.
 *
 * Conventions (whatever the file format on disk):
 * - Matrices are row-major [out, in] Float32Arrays.
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

export interface LayerWeights {
  attnNorm: Float32Array; // (dim)
  wq: Float32Array; // (nHeads * headDim, dim)
  wk: Float32Array; // (nKvHeads * headDim, dim)
  wv: Float32Array; // (nKvHeads * headDim, dim)
  wo: Float32Array; // (dim, nHeads * headDim)
  bq?: Float32Array; // (nHeads * headDim), only when attentionBias
  bk?: Float32Array; // (nKvHeads * headDim)
  bv?: Float32Array; // (nKvHeads * headDim)
  ffnNorm: Float32Array; // (dim)
  w1: Float32Array; // gate (hiddenDim, dim)
  w2: Float32Array; // down (dim, hiddenDim)
  w3: Float32Array; // up (hiddenDim, dim)
}

export interface ModelWeights {
  tokEmb: Float32Array; // (vocabSize, dim)
  layers: LayerWeights[]; // (nLayers)
  finalNorm: Float32Array; // (dim)
  /** Classifier (vocabSize, dim); the same array as tokEmb when tiedEmbeddings. */
  wcls: Float32Array;
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
