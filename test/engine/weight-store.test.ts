/**
 * Where the weights live (engine/weight-store.ts): storage buffers or rgba32uint textures. Both
 * forms match the CPU reference in every kernel shape and in the batched forward; the adapter's
 * default is the texture form on the CPU adapters (llvmpipe, SwiftShader) only; a packed model keeps storage buffers; asking for
 * textures with packed weights is an error naming them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import { adapterKernel } from '../../src/engine/device.ts';
import { GpuExecutor } from '../../src/engine/gpu-executor.ts';
import { fusedProgram, kernelSchedules } from '../../src/engine/program.ts';
import { TEXTURE_AUTO_MAX_BYTES, makeLayout, weightBufferBytes } from '../../src/engine/layout.ts';
import { storageBufferBytes, textureExtent } from '../../src/engine/weight-store.ts';
import { syntheticModel } from '../../src/loader/synthetic.ts';
import { compareBatchedWithReference, compareWithReference, testDevice } from '../helpers/gpu.ts';

const shape = { normEps: 1e-5, ropeTheta: 10000, seqLen: 64, tiedEmbeddings: false, attentionBias: true, dim: 64, hiddenDim: 172, nLayers: 3, nHeads: 8, nKvHeads: 2, headDim: 8, vocabSize: 300 };
const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

describe('storage buffer sizes', () => {
  it('round up to 16 bytes and name the model, buffer and adapter over the limits', () => {
    const limits = { maxStorageBufferBindingSize: 2 ** 20, maxBufferSize: 2 ** 30 } as GPUSupportedLimits;
    expect(storageBufferBytes(limits, 0, 'x', 'm', 'a')).toBe(16);
    expect(storageBufferBytes(limits, 5, 'x', 'm', 'a')).toBe(32);
    expect(storageBufferBytes(limits, 2 ** 18, 'x', 'm', 'a')).toBe(2 ** 20);
    expect(() => storageBufferBytes(limits, 2 ** 18 + 1, 'gate weights', 'tiny', 'llvmpipe')).toThrow(
      "tiny: the gate weights buffer needs 1.0 MiB, over this adapter's binding limit of 1 MiB (llvmpipe)",
    );
    expect(() => storageBufferBytes({ ...limits, maxBufferSize: 64 }, 17, 'KV cache', 'tiny', 'llvmpipe')).toThrow(/tiny: the KV cache buffer/);
  });
});

describe('texture geometry', () => {
  it('holds every word in whole rows of 2^shift texels', () => {
    expect(textureExtent(1, 12)).toEqual({ width: 4096, height: 1 });
    expect(textureExtent(4 * 4096, 12)).toEqual({ width: 4096, height: 1 });
    expect(textureExtent(4 * 4096 + 1, 12)).toEqual({ width: 4096, height: 2 });
    const layout = makeLayout(syntheticModel(shape, 3).config, { wg: 8, lanes: 1, style: 'cpu', texture: true }, 64, 16384);
    expect(layout.kernel.texture).toBe(true);
    expect(layout.consts.TEX_SHIFT).toBe(12);
    expect(makeLayout(syntheticModel(shape, 3).config, { wg: 8, lanes: 1, style: 'cpu' }, 64, 16384).consts.TEX_SHIFT).toBeUndefined();
  });
});

describe('both weight stores against the CPU reference', () => {
  it.each([
    ['per-op', { kernel: { texture: true } }],
    ['per-layer', { kernel: { texture: true } }],
    ['looped', { kernel: { texture: true } }],
    ['looped', { kernel: { texture: true }, tokensPerDispatch: 4 }],
    ['looped', { kernel: { texture: false } }],
    ['per-layer', { kernel: { texture: false } }],
  ] as const)('%s %j', async (mode, opts) => {
    await compareWithReference(syntheticModel(shape, 11), mode, opts, 8, all);
  }, 300_000);

  it('the texture form reads every matrix through textureLoad, and the batched forward matches the reference', async () => {
    const model = syntheticModel(shape, 12);
    const ex = (await createExecutor(model, 'looped', testDevice, { kernel: { texture: true }, poison: true })) as GpuExecutor;
    all.push(ex);
    const { schedule, looped } = kernelSchedules(model.config);
    const code = fusedProgram('looped', { schedule, looped }, ex.layout, 'plain').code;
    expect(code).toMatch(/var w_attn: texture_2d<u32>/);
    expect(code).not.toMatch(/var<storage, read> w_/);
    await compareBatchedWithReference(model, ex, Array.from({ length: 21 }, (_, i) => (i * 53 + 7) % model.config.vocabSize));
    // The device holds whole texture rows: at least the words, never less.
    const s = ex.layout.sizes;
    expect(ex.deviceBytes).toBeGreaterThanOrEqual((s.emb + s.attn + s.ffn1 + s.ffn3 + s.ffn2) * 4);
  }, 300_000);
});

describe('the adapter default', () => {
  it('textures on CPU adapters for f32 models only; storage elsewhere', async () => {
    const gpu = await testDevice();
    const k = adapterKernel(gpu);
    expect(k.texture).toBe(gpu.cpu ? 'auto' : undefined);
    // The GPU style keeps storage buffers on any adapter.
    expect(adapterKernel(gpu, { style: 'gpu', wg: 64, lanes: 32 }).texture).toBeUndefined();
    const f32 = (await createExecutor(syntheticModel(shape, 5), 'per-layer', testDevice)) as GpuExecutor;
    all.push(f32);
    expect(f32.layout.kernel.texture).toBe(gpu.cpu);
    const q8 = (await createExecutor(syntheticModel(shape, 5, 'q8_0'), 'per-layer', testDevice)) as GpuExecutor;
    all.push(q8);
    expect(q8.layout.kernel.texture).toBe(false);
    // 'auto' resolves by size: f32 weights over TEXTURE_AUTO_MAX_BYTES stay in storage buffers.
    const config = syntheticModel(shape, 5).config;
    const auto = (vocabSize: number) => makeLayout({ ...config, vocabSize }, { wg: 8, lanes: 1, style: 'cpu', texture: 'auto' }, 64, 16384);
    expect(auto(300).kernel.texture).toBe(true);
    const big = auto(Math.ceil(TEXTURE_AUTO_MAX_BYTES / (2 * 64 * 4)));
    expect(weightBufferBytes(big)).toBeGreaterThan(TEXTURE_AUTO_MAX_BYTES);
    expect(big.kernel.texture).toBe(false);
    expect(big.consts.TEX_SHIFT).toBeUndefined();
  }, 300_000);

  it('asking for textures with packed weights is an error naming them', async () => {
    await expect(createExecutor(syntheticModel(shape, 5, 'q8_0'), 'per-layer', testDevice, { kernel: { texture: true } })).rejects.toThrow(/texture weights need vec4/);
  }, 60_000);
});
