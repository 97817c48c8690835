/**
 * Real-shaped synthetic models: seeded random weights with the right shapes and scales, so that
 * bandwidth-bound regimes can be measured without downloading anything. They are labelled
 * synthetic everywhere they appear (format 'synthetic', name suffixed "(synthetic)").
 */
import { KloopError } from '../errors.ts';
import { FORMATS, blockFallback } from './quant.ts';
import { PieceType, type SpmVocab, spmTokenizer } from './tokenizer.ts';
import type { LayerWeights, LoadedModel, Matrix, ModelConfig, PackedMatrix, Tokenizer, WeightType } from './types.ts';

type Shape = Omit<ModelConfig, 'bosId' | 'eosId' | 'attentionBias'> & { attentionBias?: boolean };

/** Published shapes (config.json / llama2.c headers). seqLen is capped where the KV cache would be huge. */
export const SYNTHETIC_SHAPES: Record<string, Shape> = {
  stories15M: { dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, headDim: 48, vocabSize: 32000, seqLen: 256, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
  stories42M: { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, headDim: 64, vocabSize: 32000, seqLen: 1024, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
  stories110M: { dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, headDim: 64, vocabSize: 32000, seqLen: 1024, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
  'SmolLM-135M': { dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3, headDim: 64, vocabSize: 49152, seqLen: 2048, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true },
  'Llama-3.2-1B': { dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, headDim: 64, vocabSize: 128256, seqLen: 2048, normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true },
};

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform weights with the variance of a trained layer's init (1/fan_in), scaled by `gain`. */
function f32Matrix(rows: number, cols: number, next: () => number, gain = 1): Float32Array {
  const a = new Float32Array(rows * cols);
  const bound = gain * Math.sqrt(3 / cols);
  for (let i = 0; i < a.length; i++) a[i] = (2 * next() - 1) * bound;
  return a;
}

/** Bits of a half float of magnitude within [v/2, 2v), with the given sign. */
function f16Near(v: number, next: () => number, negative = false): number {
  const e = Math.min(30, Math.max(1, Math.floor(Math.log2(v)) + 15 - Math.floor(next() * 2)));
  return (negative ? 0x8000 : 0) | (e << 10) | Math.floor(next() * 1024);
}

function put16(b: Uint8Array, at: number, bits: number): void {
  b[at] = bits & 255;
  b[at + 1] = bits >> 8;
}

/**
 * A rows x cols matrix of `type` with random contents: every quantized field random, the block
 * scales chosen so the decoded values spread like `bound` (a trained layer's 1/sqrt(fan_in)).
 * No float32 copy is made, so large real-shaped models are quick to build in any encoding.
 */
export function randomMatrix(type: WeightType, rows: number, cols: number, next: () => number, bound = Math.sqrt(3 / cols)): Matrix {
  if (type === 'f32') return f32Matrix(rows, cols, next, bound / Math.sqrt(3 / cols));
  const f = FORMATS[type];
  if (cols % f.blockElems !== 0) throw new KloopError(`synthetic ${type} matrix: width ${cols} is not a multiple of ${f.blockElems}`);
  const data = new Uint8Array(((rows * cols) / f.blockElems) * f.blockBytes);
  const words = new Uint32Array(data.buffer, 0, data.length >> 2);
  for (let i = 0; i < words.length; i++) words[i] = (next() * 4294967296) >>> 0;
  for (let i = words.length * 4; i < data.length; i++) data[i] = Math.floor(next() * 256);
  if (type === 'f16') {
    // Each half: a random sign and mantissa, an exponent within a factor 2 of `bound` (as
    // f16Near), taken from the random bits already there: one pass, no call per value.
    const e0 = Math.min(30, Math.max(2, Math.floor(Math.log2(bound)) + 15));
    const h = new Uint16Array(data.buffer, 0, data.length >> 1);
    for (let i = 0; i < h.length; i++) {
      const w = h[i]!;
      h[i] = (w & 0x83ff) | ((e0 - ((w >> 10) & 1)) << 10);
    }
    return { type, rows, cols, data } satisfies PackedMatrix;
  }
  const blocks = data.length / f.blockBytes;
  for (let k = 0; k < blocks; k++) {
    const o = k * f.blockBytes;
    const sign = next() < 0.5;
    switch (type) {
      case 'bf16':
        put16(data, o, new Uint32Array(new Float32Array([(2 * next() - 1) * bound]).buffer)[0]! >>> 16);
        break;
      case 'q8_0': put16(data, o, f16Near(bound / 127, next, sign)); break;
      case 'q4_0': put16(data, o, f16Near(bound / 8, next, sign)); break;
      case 'q5_0': put16(data, o, f16Near(bound / 16, next, sign)); break;
      case 'q4_1':
      case 'q5_1':
        put16(data, o, f16Near((2 * bound) / (type === 'q4_1' ? 15 : 31), next));
        put16(data, o + 2, f16Near(bound, next, true));
        break;
      case 'q4_k':
      case 'q5_k':
        put16(data, o, f16Near((2 * bound) / (63 * (type === 'q4_k' ? 15 : 31)), next));
        put16(data, o + 2, f16Near(bound / 63, next, sign));
        break;
      case 'q6_k': put16(data, o + 208, f16Near(bound / (127 * 32), next, sign)); break;
    }
  }
  return { type, rows, cols, data } satisfies PackedMatrix;
}

function norm(n: number, next: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 1 + 0.2 * (next() - 0.5);
  return a;
}

const noTokenizer = (name: string): Tokenizer => {
  const fail = (): never => {
    throw new KloopError(`${name}: a synthetic model has no tokenizer; give token ids instead of text`);
  };
  return { encode: fail, decode: fail, decodeStep: fail, vocabSize: 0, toJSON: fail };
};

/** Where a synthetic matrix sits, for a per-matrix choice of encoding (syntheticModel's `pick`). */
export interface MatrixRole {
  /** The GGUF tensor name, e.g. "blk.3.attn_v.weight" or "token_embd.weight". */
  name: string;
  cols: number;
  /** The classifier: the output matrix, or the embeddings when they are tied. */
  classifier: boolean;
  layer?: number;
}

/**
 * A sentencepiece vocabulary of `n` pieces for a synthetic model: <unk>, <s>, </s>, the 256
 * byte pieces, then normal pieces "▁w259", "▁w260", ... (piece i is "▁w" and i; falling
 * scores). It gives the model a tokenizer that GGUF readers accept; its text means nothing.
 */
export function syntheticVocab(n: number): SpmVocab {
  if (n < 259) throw new KloopError(`synthetic vocabulary: ${n} pieces is fewer than the 259 control and byte pieces`);
  const pieces = ['<unk>', '<s>', '</s>'];
  const types = [PieceType.Unknown, PieceType.Control, PieceType.Control];
  for (let b = 0; b < 256; b++) {
    pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(PieceType.Byte);
  }
  for (let i = pieces.length; i < n; i++) {
    pieces.push(`\u2581w${i}`);
    types.push(PieceType.Normal);
  }
  const scores = new Float32Array(n);
  for (let i = 259; i < n; i++) scores[i] = -(i - 259);
  return { pieces, scores, types: Int32Array.from(types), bosId: 1, eosId: 2, unkId: 0 };
}

/**
 * A model of `shape` (a name from SYNTHETIC_SHAPES, or explicit dimensions) with seeded random
 * weights. The same seed gives bit-identical weights. Matrices are of `type`, or of what `pick`
 * chooses for each (a GGUF writer's per-tensor mix; their blocks are then generated in that
 * encoding, never requantized). With `vocab`, the model has a sentencepiece tokenizer of
 * syntheticVocab (for writing GGUF files other engines read).
 */
export function syntheticModel(
  shape: string | Shape,
  seed = 1234,
  type: WeightType = 'f32',
  opts: { pick?: (role: MatrixRole) => WeightType; vocab?: boolean } = {},
): LoadedModel {
  let s: Shape;
  let name: string;
  if (typeof shape === 'string') {
    const found = SYNTHETIC_SHAPES[shape];
    if (!found) {
      throw new KloopError(`--shape ${shape}: unknown shape (known: ${Object.keys(SYNTHETIC_SHAPES).join(', ')})`);
    }
    s = found;
    name = `${shape}${type === 'f32' ? '' : ` ${type}`} (synthetic)`;
  } else {
    s = shape;
    name = `synthetic-${s.dim}x${s.nLayers}`;
  }
  const config: ModelConfig = { ...s, attentionBias: s.attentionBias ?? false, bosId: 1, eosId: 2 };
  const next = rng(seed);
  // Packed matrices whose rows do not divide into the type's blocks fall back as llama.cpp's
  // quantizer does (blockFallback).
  const matrix = (rows: number, cols: number, nx: () => number, gain = 1, role?: MatrixRole): Matrix => {
    const t = role && opts.pick ? opts.pick(role) : type;
    return t === 'f32' ? f32Matrix(rows, cols, nx, gain) : randomMatrix(blockFallback(t, cols), rows, cols, nx, gain * Math.sqrt(3 / cols));
  };
  const role = (name: string, cols: number, layer?: number): MatrixRole => ({ name, cols, classifier: false, layer });
  const { dim, hiddenDim, nHeads, nKvHeads, headDim } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const layer: LayerWeights = {
      attnNorm: norm(dim, next),
      wq: matrix(qDim, dim, next, 1, role(`blk.${l}.attn_q.weight`, dim, l)),
      wk: matrix(kvDim, dim, next, 1, role(`blk.${l}.attn_k.weight`, dim, l)),
      wv: matrix(kvDim, dim, next, 1, role(`blk.${l}.attn_v.weight`, dim, l)),
      wo: matrix(dim, qDim, next, 0.5, role(`blk.${l}.attn_output.weight`, qDim, l)),
      ffnNorm: norm(dim, next),
      w1: matrix(hiddenDim, dim, next, 1, role(`blk.${l}.ffn_gate.weight`, dim, l)),
      w2: matrix(dim, hiddenDim, next, 0.5, role(`blk.${l}.ffn_down.weight`, hiddenDim, l)),
      w3: matrix(hiddenDim, dim, next, 1, role(`blk.${l}.ffn_up.weight`, dim, l)),
    };
    if (config.attentionBias) {
      layer.bq = f32Matrix(1, qDim, next, 0.1);
      layer.bk = f32Matrix(1, kvDim, next, 0.1);
      layer.bv = f32Matrix(1, kvDim, next, 0.1);
    }
    layers.push(layer);
  }
  const tokEmb = matrix(config.vocabSize, dim, next, Math.sqrt(dim / 3), { name: 'token_embd.weight', cols: dim, classifier: config.tiedEmbeddings });
  const wcls = config.tiedEmbeddings ? tokEmb : matrix(config.vocabSize, dim, next, 1, { name: 'output.weight', cols: dim, classifier: true });
  return {
    name,
    source: `synthetic:${typeof shape === 'string' ? shape : name}:seed=${seed}`,
    format: 'synthetic',
    config,
    weights: { tokEmb, layers, finalNorm: norm(dim, next), wcls },
    tokenizer: opts.vocab ? spmTokenizer(syntheticVocab(config.vocabSize), name) : noTokenizer(name),
  };
}
