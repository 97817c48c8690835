/**
 * Packed weights in every kernel shape: matrices kept in their 16-bit or block-quantized
 * encoding on the device and decoded inside the matvec, the embedding lookup and the classifier,
 * against the CPU reference decoding the same bytes. One model carries all eleven encodings, mixed
 * inside the q|k|v matvec and differing between layers (the looped kernel switches per layer).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type Executor, type Mode, createExecutor } from '../../src/engine/executor.ts';
import type { GpuOptions } from '../../src/engine/gpu-executor.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import { syntheticModel } from '../../src/loader/synthetic.ts';
import type { LoadedModel, WeightType } from '../../src/loader/types.ts';
import { argmaxOf, compareWithReference, relError, testDevice } from '../helpers/gpu.ts';
import { withPackedWeights } from '../helpers/packed.ts';
import { matvecWgsl } from '../../src/kernels-wgsl/matvec.wgsl.ts';

const shape = {
  dim: 256, hiddenDim: 512, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 64, vocabSize: 300,
  seqLen: 32, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, attentionBias: true,
};
// Every encoding at least once; each matrix differs between the two layers.
const MIXED: Record<string, WeightType>[] = [
  { wq: 'q8_0', wk: 'q4_0', wv: 'q4_1', wo: 'q5_0', w1: 'q4_k', w3: 'q5_k', w2: 'q6_k' },
  { wq: 'q4_k', wk: 'q6_k', wv: 'f16', wo: 'bf16', w1: 'q8_0', w3: 'f32', w2: 'q5_1' },
];
const mixed = (): LoadedModel =>
  withPackedWeights(syntheticModel(shape, 21), (l, m) => (l < 0 ? (m === 'emb' ? 'q8_0' : 'q6_k') : MIXED[l][m]));

const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

// Each executor is destroyed after its comparison (the file builds more than a dozen).
async function compare(model: LoadedModel, mode: Mode, opts: Omit<GpuOptions, 'mode'>, steps = 8): Promise<void> {
  const keep: Executor[] = [];
  try {
    await compareWithReference(model, mode, opts, steps, keep);
  } finally {
    for (const e of keep) e.destroy();
  }
}

describe('packed weights against the CPU reference', () => {
  it('the reference decodes every encoding (logits are not trivially equal)', async () => {
    const m = mixed();
    const ref = await createExecutor(m, 'reference', testDevice);
    const logits = await ref.forward(3, 0);
    expect(logits.every(Number.isFinite)).toBe(true);
    const spread = Math.max(...logits) - Math.min(...logits);
    expect(spread).toBeGreaterThan(0.1);
  });
  it.each([
    ['per-op', { kernel: { wg: 64, lanes: 1 } }],
    ['per-op', { kernel: { style: 'gpu', wg: 64, lanes: 32, tile: 128, padStaging: true } }], // rows wider than the tile, padded staging
    ['per-layer', {}],
    ['looped', {}],
    ['per-op', { kernel: { style: 'gpu', wg: 64, lanes: 8, vec4: true } }],
  ] as const)('%s with %j on all eleven encodings', async (mode, opts) => {
    await compare(mixed(), mode, opts as Omit<GpuOptions, 'mode'>);
  }, 600_000);
  // One encoding everywhere: gate and up share it, so the GPU forms' gate_up walks both rows in
  // one loop (packedPair); the CPU forms, subgroup and staged, run every block body. Per-op
  // kernels: the looped composition of the same stage bodies is checked above, and each looped
  // kernel costs lavapipe tens of seconds to compile on a cold shader cache.
  it.each([
    ['q4_k', 'per-op', {}],
    ['f16', 'per-op', {}],
    ['q8_0', 'per-op', { kernel: { wg: 64, lanes: 1, subgroups: 0 } }],
    ['q4_0', 'per-op', { kernel: { style: 'gpu', wg: 64, lanes: 32, tile: 128, padStaging: true } }],
    ['q6_k', 'per-op', { kernel: { style: 'gpu', wg: 64, lanes: 8, vec4: true } }],
  ] as const)('%s everywhere, %s with %j', async (type, mode, opts) => {
    const m = withPackedWeights(syntheticModel(shape, 23), () => type);
    await compare(m, mode, opts as Omit<GpuOptions, 'mode'>);
  }, 600_000);
  it('looped K=4 decodes the reference greedy tokens', async () => {
    const m = mixed();
    const ref = await createExecutor(m, 'reference', testDevice);
    const want = await ref.decode([1, 7], 0, 20, GREEDY);
    const ex = await createExecutor(m, 'looped', testDevice, { tokensPerDispatch: 4 });
    all.push(ex);
    expect(await ex.decode([1, 7], 0, 20, GREEDY)).toEqual(want);
  }, 600_000);
});

describe('gate/up of one packed encoding', () => {
  const op = (buf: string, type: WeightType) => ({ buf, segs: [{ r0: 0, rows: 64, base: '0u', types: [type] }] });
  const gateUp = (ta: WeightType, tb: WeightType, lanes: number) =>
    matvecWgsl({ name: 'gate_up', rows: 64, cols: 256, input: 'A_XN', a: op('w_ffn1', ta), b: op('w_ffn3', tb), epilogue: '', lanes, wg: 64, tile: 256 });
  const loops = (wgsl: string) => wgsl.match(/for \(var u = /g)?.length ?? 0;
  it('walks both rows in one loop over the units in the GPU form (32 lanes a row), in two in the CPU form', () => {
    expect(loops(gateUp('q4_0', 'q4_0', 32))).toBe(1);
    expect(loops(gateUp('q4_k', 'q6_k', 32))).toBe(2);
    expect(loops(gateUp('q4_0', 'q4_0', 1))).toBe(2);
  });
});
