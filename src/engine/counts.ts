/** Small counts shared by the session, the benchmarks and the page. */
import type { ModelConfig } from '../loader/types.ts';

/** Parameters of a model (weights counted once; a tied classifier is the embedding table). */
export function parameterCount(c: ModelConfig): number {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const qkvRows = qDim + 2 * kvDim;
  const layer = 2 * c.dim + qkvRows * c.dim + (c.attentionBias ? qkvRows : 0) + c.dim * qDim + 3 * c.hiddenDim * c.dim;
  return c.vocabSize * c.dim * (c.tiedEmbeddings ? 1 : 2) + c.nLayers * layer + c.dim;
}

/** The median of a list (the mean of the middle two for an even length). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
