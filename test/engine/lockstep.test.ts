/**
 * The lockstep kernel form (kernels-wgsl/lockstep.wgsl.ts, engine/lockstep.ts): the probe
 * accepts a one-row workgroup on llvmpipe and rejects shapes that do not run in lockstep; the
 * executor uses the barrier-free form only where the probe passed and only for kernels without
 * grid sync; both forms match the CPU reference.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import { adapterKernel } from '../../src/engine/device.ts';
import { GpuExecutor } from '../../src/engine/gpu-executor.ts';
import { makeLayout } from '../../src/engine/layout.ts';
import { fusedProgram, kernelSchedules, perOpProgram } from '../../src/engine/program.ts';
import { runsInLockstep } from '../../src/engine/lockstep.ts';
import { lockstepProbeExpected, withoutBarriers } from '../../src/kernels-wgsl/lockstep.wgsl.ts';
import { syntheticModel } from '../../src/loader/synthetic.ts';
import { compareWithReference, testDevice } from '../helpers/gpu.ts';

const shape = { normEps: 1e-5, ropeTheta: 10000, seqLen: 64, tiedEmbeddings: false, attentionBias: true, dim: 64, hiddenDim: 172, nLayers: 3, nHeads: 8, nKvHeads: 2, headDim: 8, vocabSize: 300 };
const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

describe('the lockstep probe', () => {
  it('expects a ring exchange that only lockstep execution produces', () => {
    const w = lockstepProbeExpected(8, 2);
    expect(w.length).toBe(48);
    // Workgroup 0, lane 0: a = ring[1] = 2; b = 3 * a(lane 7) = 3 * ring[0] = 3; out = b + 7.
    expect(Array.from(w.slice(0, 3))).toEqual([10, 13, 16]);
    expect(w[8]).toBe(2);
    // Workgroup 1 starts its ring at 2: lane 0 gets a = 3, b = 3 * 2.
    expect([w[24], w[32]]).toEqual([13, 3]);
  });

  it('strips workgroup and storage barriers and nothing else', () => {
    const code = 'workgroupBarrier(); let a = workgroupUniformLoad(&x); storageBarrier(); st(0u, 1.0);';
    expect(withoutBarriers(code)).toBe(' let a = workgroupUniformLoad(&x);  st(0u, 1.0);');
  });

  it('measures this adapter: a workgroup of two SIMD rows is never in lockstep', async () => {
    const gpu = await testDevice();
    if (!gpu.cpu) {
      expect(gpu.lockstepWidth).toBe(0);
      return;
    }
    // llvmpipe runs 8 invocations as one row; SwiftShader 8 as two 4-lane rows, 4 as one.
    if (/llvmpipe|lavapipe/i.test(gpu.name)) expect(gpu.lockstepWidth).toBe(8);
    else expect(gpu.lockstepWidth).toBe(4);
    // 64 invocations are at least two rows on every CPU adapter: the probe must fail.
    expect(await runsInLockstep(gpu.device, 64)).toBe(false);
  }, 60_000);
});

describe('the executor picks the lockstep form only where it holds', () => {
  it('default kernels on a lockstep adapter: one-row workgroups, no barrier in any kernel without grid sync', async (ctx) => {
    const gpu = await testDevice();
    const model = syntheticModel(shape, 5);
    const ex = (await createExecutor(model, 'looped', testDevice, { tokensPerDispatch: 4 })) as GpuExecutor;
    all.push(ex);
    const k = ex.layout.kernel;
    expect(k.lockstep).toBe(gpu.lockstepWidth > 0);
    if (!k.lockstep) {
      const why = `the lockstep form's checks: adapter '${gpu.name}' runs no workgroup in lockstep (measured width ${gpu.lockstepWidth})`;
      console.log(`SKIPPED ${why}`);
      ctx.skip(why);
    }
    expect(k.wg).toBe(gpu.lockstepWidth);
    const { schedule, looped } = kernelSchedules(model.config);
    const single = fusedProgram('looped', { schedule, looped }, ex.layout, 'plain').code;
    expect(single).not.toMatch(/workgroupBarrier|storageBarrier/);
    expect(perOpProgram(schedule, ex.layout).code).not.toMatch(/workgroupBarrier|storageBarrier/);
    // Several workgroups synchronising through atomics keep every barrier.
    expect(fusedProgram('looped', { schedule, looped }, ex.layout, 'atomic').code).toMatch(/workgroupBarrier/);
  }, 300_000);

  it('given kernel options reach the layout; the adapter fills in the rest', async () => {
    const gpu = await testDevice();
    const k = adapterKernel(gpu, { style: 'gpu', wg: 64, lanes: 32, tile: 128, padStaging: true });
    expect(k).toMatchObject({ style: 'gpu', wg: 64, lanes: 32, tile: 128, padStaging: true, lockstep: false });
    const ex = (await createExecutor(syntheticModel(shape, 5), 'per-op', testDevice, { kernel: { style: 'gpu', wg: 64, lanes: 32, tile: 128, padStaging: true } })) as GpuExecutor;
    all.push(ex);
    expect(ex.layout.consts.XS_LEN).toBe(128 + 128 / 32); // padded: a word per 32
    expect(adapterKernel(gpu).style).toBe(gpu.cpu ? 'cpu' : 'gpu');
    // Padding is the 'gpu' style's default and off for the 'cpu' style, unless asked.
    const cfg = syntheticModel(shape, 5).config;
    const at = (kernel: Parameters<typeof makeLayout>[1]) => makeLayout(cfg, kernel, 16, 16384);
    expect(at({ style: 'gpu', wg: 64, lanes: 32, tile: 128 }).consts.XS_LEN).toBe(132);
    expect(at({ style: 'gpu', wg: 64, lanes: 32, tile: 128 }).kernel.padStaging).toBe(true);
    expect(at({ style: 'gpu', wg: 64, lanes: 32, tile: 128, padStaging: false }).consts.XS_LEN).toBe(128);
    expect(at({ style: 'cpu', wg: 8, lanes: 1, tile: 128 }).consts.XS_LEN).toBe(128);
    // A tile that is not a multiple of 32 still gets a whole word for its last, partial 32.
    expect(at({ style: 'gpu', wg: 64, lanes: 32, tile: 100 }).consts.XS_LEN).toBe(104);
  }, 120_000);

  it('asking for lockstep where the adapter does not run it is an error naming the option', async () => {
    await expect(createExecutor(syntheticModel(shape, 5), 'per-op', testDevice, { kernel: { wg: 64, lockstep: true } })).rejects.toThrow(/lockstep.*64-invocation/);
  }, 60_000);
});

describe('both CPU forms against the CPU reference', () => {
  it.each([
    ['per-layer', {}],
    ['looped', {}],
    ['per-layer', { kernel: { wg: 16 } }], // barriers kept: two rows
    ['looped', { kernel: { wg: 16 } }],
    ['looped', { groups: 2 }], // grid sync: barriers kept
  ] as const)('%s %j', async (mode, opts) => {
    await compareWithReference(syntheticModel(shape, 9), mode, opts, 10, all);
  }, 300_000);
});
