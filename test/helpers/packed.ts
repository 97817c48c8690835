/**
 * Models with random packed matrices for kernel tests (randomMatrix: every quantized field
 * random, the block scales giving a trained layer's spread). The CPU reference and the kernels
 * decode the same bytes, so the tests check decoding and accumulation, not a quantizer.
 */
import { randomMatrix, rng } from '../../src/loader/synthetic.ts';
import type { LoadedModel, Matrix, WeightType } from '../../src/loader/types.ts';

/**
 * `model` with its matrices re-encoded: `pick(layer, name)` gives each matrix's type (layer -1:
 * the embedding 'emb' and classifier 'cls').
 */
export function withPackedWeights(model: LoadedModel, pick: (layer: number, name: string) => WeightType, seed = 5): LoadedModel {
  const next = rng(seed);
  const c = model.config;
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const shapes: Record<string, [number, number]> = {
    wq: [qDim, c.dim], wk: [kvDim, c.dim], wv: [kvDim, c.dim], wo: [c.dim, qDim],
    w1: [c.hiddenDim, c.dim], w3: [c.hiddenDim, c.dim], w2: [c.dim, c.hiddenDim],
  };
  const tokEmb = randomMatrix(pick(-1, 'emb'), c.vocabSize, c.dim, next, 1);
  const wcls = c.tiedEmbeddings ? tokEmb : randomMatrix(pick(-1, 'cls'), c.vocabSize, c.dim, next);
  const layers = model.weights.layers.map((l, n) => {
    const out = { ...l };
    for (const [m, [r, k]] of Object.entries(shapes)) (out as Record<string, Matrix>)[m] = randomMatrix(pick(n, m), r, k, next);
    return out;
  });
  return { ...model, weights: { ...model.weights, tokEmb, wcls, layers } };
}
