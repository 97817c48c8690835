/**
 * Counting: parameters, bytes moved and FLOPs per decode step of a ModelShape.
 * Pure arithmetic, no system parameters (those are in model.ts).
 */
import type { FlopConvention, ModelShape } from './types.ts';

// ---------------------------------------------------------------------------------------------
// FLOP conventions
// ---------------------------------------------------------------------------------------------

/**
 * Named FLOP conventions. For Llama-3.1-8B at context 4096:
 * - `2n-plus-attention`: 2 FLOPs per parameter (all of them) + QK^T and AV  -> 18.2 GFLOPs
 * - `matmul-only`: 2 FLOPs per matmul parameter (no embedding gather) + attention -> 17.2
 * - `paper-table1`: the attention term counted at twice the plain rate -> 20.4, the convention
 *   that reproduces Table 1's "20 GFLOPs / token" (the paper does not state its convention;
 *   this one is a fit to the printed number, not a derivation).
 */
export const FLOP_CONVENTIONS = {
  '2n-plus-attention': { name: '2n-plus-attention', flopsPerParam: 2, countEmbedding: true, attnFactor: 4 },
  'matmul-only': { name: 'matmul-only', flopsPerParam: 2, countEmbedding: false, attnFactor: 4 },
  'paper-table1': { name: 'paper-table1', flopsPerParam: 2, countEmbedding: true, attnFactor: 8 },
} as const satisfies Record<string, FlopConvention>;

export type FlopConventionName = keyof typeof FLOP_CONVENTIONS;

/** Default: the convention that reproduces Table 1. */
export const DEFAULT_FLOP_CONVENTION: FlopConvention = FLOP_CONVENTIONS['paper-table1'];

export function flopConvention(name: string): FlopConvention {
  const c = (FLOP_CONVENTIONS as Record<string, FlopConvention>)[name];
  if (!c) throw new Error(`unknown FLOP convention "${name}" (known: ${Object.keys(FLOP_CONVENTIONS).join(', ')})`);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

export interface ParamCounts {
  /** Input embedding table (vocab, hidden). */
  embedding: number;
  /** One decoder layer: q, k, v, o, gate, up, down, two norms (+ q/k/v biases). */
  perLayer: number;
  /** All decoder layers. */
  layers: number;
  /** Final norm + classifier (0 classifier parameters when tied). */
  head: number;
  total: number;
}

export function paramCounts(s: ModelShape): ParamCounts {
  const d = s.hidden;
  const qDim = s.nHeads * s.headDim;
  const kvDim = s.nKvHeads * s.headDim;
  const attn = d * qDim + 2 * d * kvDim + qDim * d + (s.attentionBias ? qDim + 2 * kvDim : 0);
  const ffn = 3 * d * s.ffn;
  const norms = 2 * d;
  const perLayer = attn + ffn + norms;
  const embedding = s.vocab * d;
  const head = d + (s.tiedEmbeddings ? 0 : s.vocab * d);
  const layers = perLayer * s.nLayers;
  return { embedding, perLayer, layers, head, total: embedding + layers + head };
}

// ---------------------------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------------------------

/** Weight bytes read per decode step: Table 1 counts every parameter (the whole embedding table too). */
export type WeightReadConvention = 'all-parameters' | 'embedding-row-only';

export function weightBytes(s: ModelShape): number {
  return paramCounts(s).total * s.bytesPerParam;
}

/** Weight bytes streamed per decode step (independent of batch: weights are read once per step). */
export function weightBytesRead(s: ModelShape, convention: WeightReadConvention = 'all-parameters'): number {
  const p = paramCounts(s);
  // A tied classifier reads the whole table anyway; otherwise the gather reads one row.
  const skip = convention === 'all-parameters' || s.tiedEmbeddings ? 0 : p.embedding - s.hidden;
  const params = p.total - skip;
  return params * s.bytesPerParam;
}

/** KV-cache bytes of ONE sequence holding `context` positions: layers x (K,V) x kvHeads x headDim. */
export function kvBytes(s: ModelShape, context: number): number {
  const el = s.kvBytesPerElement ?? s.bytesPerParam;
  return s.nLayers * 2 * s.nKvHeads * s.headDim * context * el;
}

// ---------------------------------------------------------------------------------------------
// FLOPs
// ---------------------------------------------------------------------------------------------

/** FLOPs to produce ONE token of ONE sequence at `context` cached positions. */
export function flopsPerToken(s: ModelShape, context: number, c: FlopConvention = DEFAULT_FLOP_CONVENTION): number {
  const p = paramCounts(s);
  // The gather does no arithmetic; a tied classifier still multiplies by the table.
  const params = c.countEmbedding || s.tiedEmbeddings ? p.total : p.total - p.embedding;
  const attention = c.attnFactor * s.nLayers * context * s.nHeads * s.headDim;
  return c.flopsPerParam * params + attention;
}
