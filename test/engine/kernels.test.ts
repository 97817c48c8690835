/**
 * Every stage's WGSL against the CPU reference on random weights, over shapes that exercise the
 * corners: GQA and plain MHA, q/k/v biases, an untied classifier, a head size that does not
 * divide the workgroup, input vectors wider than the matvec tile, and several workgroup shapes.
 * Activations are poisoned with NaN before every step, so an unwritten value shows.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type Executor, type Mode, createExecutor } from '../../src/engine/executor.ts';
import type { GpuOptions } from '../../src/engine/gpu-executor.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import path from 'node:path';
import { loadModel } from '../../src/loader/index.ts';
import { syntheticModel } from '../../src/loader/synthetic.ts';
import { modelsDir } from '../helpers/paths.ts';
import type { LoadedModel } from '../../src/loader/types.ts';
import { argmaxOf, compareWithReference, relError, testDevice } from '../helpers/gpu.ts';
import { attentionGroupLanes } from '../../src/kernels-wgsl/attention.wgsl.ts';
import { matvecLanes } from '../../src/kernels-wgsl/matvec.wgsl.ts';

const base = { normEps: 1e-5, ropeTheta: 10000, seqLen: 64, tiedEmbeddings: true };
const SHAPES = {
  gqa: { ...base, dim: 64, hiddenDim: 172, nLayers: 3, nHeads: 8, nKvHeads: 2, headDim: 8, vocabSize: 300 },
  bias_untied: { ...base, dim: 96, hiddenDim: 200, nLayers: 2, nHeads: 4, nKvHeads: 4, headDim: 24, vocabSize: 257, attentionBias: true, tiedEmbeddings: false },
  head48: { ...base, dim: 96, hiddenDim: 256, nLayers: 2, nHeads: 2, nKvHeads: 1, headDim: 48, vocabSize: 128, ropeTheta: 500000 },
};

const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

const compare = (model: LoadedModel, mode: Mode, opts: Omit<GpuOptions, 'mode'>, steps = 12): Promise<void> =>
  compareWithReference(model, mode, opts, steps, all);

describe('per-op kernels against the CPU reference', () => {
  it.each([
    ['gqa', { wg: 64, lanes: 1 }],
    ['gqa', { wg: 32, lanes: 32, tile: 64 }], // matvec inputs wider than the tile: several passes
    ['bias_untied', { wg: 64, lanes: 4 }],
    ['head48', { wg: 32, lanes: 1, tile: 64 }], // head size 48 does not divide 32
  ] as const)('%s with kernel %j', async (shape, kernel) => {
    await compare(syntheticModel(SHAPES[shape], 7), 'per-op', { kernel });
  }, 240_000);
});

describe('GPU-form kernels (lane sums, tree reductions, parallel attention) on this adapter', () => {
  // The style's defaults (lane sums on subgroup rows where the probe passed, padded staging);
  // then the tree, and the staging without padding.
  it.each([
    ['per-op', {}],
    ['looped', {}],
    ['per-op', { subgroups: 0 }],
    ['looped', { subgroups: 0, padStaging: false }],
    ['per-layer', { padStaging: false }],
  ] as const)('%s, %j', async (mode, o) => {
    await compare(syntheticModel(SHAPES.gqa, 13), mode, { kernel: { style: 'gpu', wg: 64, lanes: 8, ...o } }, 8);
  }, 300_000);
  it('attention across its two GPU forms: query heads at once up to 16 positions (64 invocations, 4 heads a KV head), in turn beyond', async () => {
    expect(attentionGroupLanes({ WG: 64, SEQ: 64, GROUP: 4, HD: 8 })).toBe(16);
    expect(attentionGroupLanes({ WG: 128, SEQ: 64, GROUP: 4, HD: 8 })).toBe(0); // the scores would not fit
    await compare(syntheticModel(SHAPES.gqa, 19), 'looped', { kernel: { style: 'gpu', wg: 64, lanes: 8 } }, 24);
  }, 300_000);
  it('greedy and seeded sampling in the GPU form (four-wide argmax, subgroup reductions) give the host sampler\'s tokens', async () => {
    const model = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
    const ref = await createExecutor(model, 'reference', testDevice);
    const gpu = await createExecutor(model, 'per-op', testDevice, { kernel: { style: 'gpu', wg: 64, lanes: 8 }, poison: true });
    all.push(gpu);
    expect(await gpu.decode([1], 0, 40, GREEDY)).toEqual(await ref.decode([1], 0, 40, GREEDY));
    const sampling = { temperature: 0.9, topK: 40, topP: 0.9, seed: 99 };
    const drawn = await gpu.decode([1, 5, 9], 0, 32, sampling);
    expect(new Set(drawn).size).toBeGreaterThan(5);
    expect(drawn).toEqual(await ref.decode([1, 5, 9], 0, 32, sampling));
  }, 300_000);
  it('matvecs widened past the kernel\'s lanes (4 -> 8 and 16 lanes a row, over a subgroup of 8) where rows are few', async () => {
    const shape = { ...base, dim: 256, hiddenDim: 512, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 64, vocabSize: 300 };
    expect([matvecLanes({ wg: 64, lanes: 4 }, 256, 256), matvecLanes({ wg: 64, lanes: 4 }, 256, 512)]).toEqual([8, 16]);
    for (const mode of ['per-op', 'looped'] as const) await compare(syntheticModel(shape, 23, 'q4_0'), mode, { kernel: { style: 'gpu', wg: 64, lanes: 4 } }, 6);
  }, 300_000);
  it('per-op with vec4 weights over several input tiles', async () => {
    await compare(syntheticModel(SHAPES.bias_untied, 17), 'per-op', { kernel: { style: 'gpu', wg: 32, lanes: 32, tile: 64, vec4: true } }, 8);
  }, 300_000);
});

describe('fused kernels against the CPU reference', () => {
  it.each(['per-layer', 'looped'] as const)('%s on a GQA model with biases and an untied classifier', async (mode) => {
    const shape = { ...SHAPES.gqa, attentionBias: true, tiedEmbeddings: false };
    await compare(syntheticModel(shape, 11), mode, {});
  }, 300_000);
});

describe('sampling on the device', () => {
  it('seeded top-k/top-p sampling gives the same tokens per-op, looped K=1 and looped K=16, and matches the host sampler', async () => {
    // A trained model: random weights give one dominant logit and nothing to sample.
    const model = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
    const sampling = { temperature: 0.9, topK: 40, topP: 0.9, seed: 1234 };
    const runs: Record<string, number[]> = {};
    for (const [mode, k] of [['reference', 1], ['per-op', 1], ['looped', 1], ['looped', 16]] as const) {
      const ex = await createExecutor(model, mode, testDevice, { tokensPerDispatch: k });
      all.push(ex);
      runs[`${mode}:${k}`] = await ex.decode([1, 5, 9], 0, 48, sampling);
    }
    expect(new Set(runs['per-op:1']).size).toBeGreaterThan(5); // really sampled, not greedy
    expect(runs['looped:1']).toEqual(runs['per-op:1']);
    expect(runs['looped:16']).toEqual(runs['per-op:1']);
    // The host sampler (float64 logits) agrees with the device (float32) on these draws.
    expect(runs['reference:1']).toEqual(runs['per-op:1']);
    // Greedy ignores the seed.
    const ref = await createExecutor(model, 'reference', testDevice);
    expect(await ref.decode([1], 0, 8, { ...GREEDY, seed: 5 })).toEqual(await ref.decode([1], 0, 8, GREEDY));
  }, 300_000);
});
