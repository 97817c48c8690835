/**
 * The subgroup form of the f32 matvecs and matmuls (kernels-wgsl/subgroup.wgsl.ts): the probe
 * accepts the adapter's real subgroup rows and rejects wrong ones; the executor uses the form
 * only where the probe passed; with it and without it every kernel shape and the batched forward
 * match the CPU reference, on shapes whose rows and widths are not multiples of the subgroup
 * (clamped last rows, the half block) and whose q|k|v segments do not start on a subgroup
 * boundary (those rows keep the plain form).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import { adapterKernel, cpuWorkgroupSize } from '../../src/engine/device.ts';
import { GpuExecutor } from '../../src/engine/gpu-executor.ts';
import { fusedProgram, kernelSchedules, perOpProgram } from '../../src/engine/program.ts';
import { runsSubgroupRows } from '../../src/engine/lockstep.ts';
import { subgroupDotWgsl, subgroupLaneSum, subgroupLaneSumWgsl, subgroupProbeExpected } from '../../src/kernels-wgsl/subgroup.wgsl.ts';
import { subgroupForm } from '../../src/kernels-wgsl/matvec.wgsl.ts';
import { SYNTHETIC_SHAPES, syntheticModel } from '../../src/loader/synthetic.ts';
import { makeLayout } from '../../src/engine/layout.ts';
import { batchLayout, defaultChunk } from '../../src/engine/batch-layout.ts';
import { compareBatchedWithReference, compareWithReference, testDevice } from '../helpers/gpu.ts';

// hidden 172 = 21.5 rows of 8 and 43 words of 4: the clamped last rows and the half block.
const shape = { normEps: 1e-5, ropeTheta: 10000, seqLen: 64, tiedEmbeddings: false, attentionBias: true, dim: 64, hiddenDim: 172, nLayers: 3, nHeads: 8, nKvHeads: 2, headDim: 8, vocabSize: 300 };
// k starts at row 36 and v at 48: not on a boundary of 8, so qkv keeps the plain form.
const odd = { ...shape, dim: 36, hiddenDim: 100, nHeads: 3, nKvHeads: 1, headDim: 12, vocabSize: 260, attentionBias: false };
const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

describe('the subgroup probe and form', () => {
  it('expects each lane to read its own subgroup of consecutive lanes', () => {
    const w = subgroupProbeExpected(8, 4, 2);
    expect(w.length).toBe(2 * 8 * 5);
    // Workgroup 0, lane 5: subgroup lanes 4..7, then the size.
    expect(Array.from(w.slice(25, 30))).toEqual([31, 38, 45, 52, 4]);
    // Workgroup 1, lane 0: global lanes 8..11.
    expect(Array.from(w.slice(40, 45))).toEqual([59, 66, 73, 80, 4]);
  });

  it('writes S / 4 words a block, a half block only for S = 8, and rejects other widths', () => {
    const d = { cols: 'len', x: 'xs[c]', rows: [{ acc: 'a0', word: (i: string) => `w_v(r + ${i})` }] };
    const eight = subgroupDotWgsl({ ...d, s: 8 });
    expect(eight.match(/subgroupBroadcast\(xl, 7u\)/g)).toHaveLength(1);
    expect(eight).toMatch(/len\) % 8u != 0u/);
    expect(eight).toMatch(/min\(sl, 3u\)/);
    const four = subgroupDotWgsl({ ...d, s: 4 });
    expect(four).not.toMatch(/subgroupBroadcast\(xl, 4u\)/);
    expect(four).not.toMatch(/% 4u != 0u/);
    expect(() => subgroupDotWgsl({ ...d, s: 16 })).toThrow(/subgroup width 16/);
  });

  it('applies only with one invocation per row, vec4 words and segments on subgroup boundaries', () => {
    const seg = (r0: number) => ({ r0, rows: 8, base: '0u', types: ['f32' as const] });
    const p = { sg: 8, lanes: 1, vec4: true, wg: 8, a: { buf: 'w', segs: [seg(0), seg(64), seg(80)] } };
    expect(subgroupForm(p)).toBe(true);
    expect(subgroupForm({ ...p, a: { buf: 'w', segs: [seg(0), seg(36)] } })).toBe(false);
    expect(subgroupForm({ ...p, lanes: 2 })).toBe(false);
    expect(subgroupForm({ ...p, vec4: false })).toBe(false);
    expect(subgroupForm({ ...p, sg: 0 })).toBe(false);
  });

  it('measures this adapter: none on a GPU (the CPU-adapter probe is not run there)', async (ctx) => {
    const gpu = await testDevice();
    if (gpu.cpu) ctx.skip(`${gpu.name} is a CPU adapter: the next test measures it`);
    expect(gpu.subgroupWidth).toBe(0);
  });

  it('measures this adapter: the width found passes, twice that does not', async (ctx) => {
    const gpu = await testDevice();
    if (!gpu.cpu) ctx.skip(`${gpu.name} is a GPU: no subgroup rows are probed`);
    const wg = cpuWorkgroupSize(gpu);
    if (/llvmpipe|lavapipe/i.test(gpu.name)) expect(gpu.subgroupWidth).toBe(8);
    if (gpu.subgroupWidth === 0) ctx.skip(`${gpu.name}: its subgroups are not rows of consecutive invocations (probe found none)`);
    expect(await runsSubgroupRows(gpu.device, wg, gpu.subgroupWidth)).toBe(true);
    // Subgroups of twice the real width: lanes of the other half are read wrongly.
    expect(await runsSubgroupRows(gpu.device, 2 * gpu.subgroupWidth, 2 * gpu.subgroupWidth)).toBe(false);
  }, 60_000);
});

describe('the GPU form: lane sums on subgroup rows', () => {
  it('sums a row in one subgroupAdd, a butterfly, or per subgroup then across them', () => {
    expect(subgroupLaneSumWgsl('v', 32, 32)).toBe('v = subgroupAdd(v);');
    expect(subgroupLaneSumWgsl('v', 8, 32)).toBe('v += subgroupShuffleXor(v, 4u); v += subgroupShuffleXor(v, 2u); v += subgroupShuffleXor(v, 1u);');
    const wide = subgroupLaneSumWgsl('v', 32, 8);
    expect(wide.match(/workgroupBarrier/g)).toHaveLength(2);
    expect(wide).toMatch(/v = red\[lid \/ 8u\] \+ red\[lid \/ 8u \+ 1u\] \+ red\[lid \/ 8u \+ 2u\] \+ red\[lid \/ 8u \+ 3u\];/);
    expect(subgroupLaneSum({ sg: 8, lanes: 32, wg: 64 })).toBe(true);
    expect(subgroupLaneSum({ sg: 8, lanes: 1, wg: 64 })).toBe(false);
    expect(subgroupLaneSum({ sg: 0, lanes: 32, wg: 64 })).toBe(false);
    expect(subgroupLaneSum({ sg: 8, lanes: 32, wg: 36 })).toBe(false);
  });

  // lanes 8 = the subgroup, 4 below it (butterfly), 32 above it (two barriers); stories260K-like
  // widths and a packed model, every kernel shape and the batched forward against the reference.
  const gpuForm = (lanes: number, subgroups?: number, padStaging?: boolean) => ({
    style: 'gpu' as const, wg: 64, lanes, ...(subgroups === undefined ? {} : { subgroups }), ...(padStaging === undefined ? {} : { padStaging }),
  });
  it.each([
    ['per-op', 8, {}],
    ['per-layer', 4, {}],
    ['looped', 32, {}],
    ['looped', 8, { tokensPerDispatch: 4 }],
    ['per-layer', 32, { groups: 2 }],
  ] as const)('%s, %i lanes a row, %j, matches the reference', async (mode, lanes, opts) => {
    const gpu = await testDevice();
    const model = syntheticModel(shape, 31);
    const ex = (await createExecutor(model, mode, testDevice, { ...opts, kernel: gpuForm(lanes) })) as GpuExecutor;
    all.push(ex);
    const code = perOpProgram(kernelSchedules(model.config).schedule, ex.layout).code;
    const probed = gpu.subgroupRows?.get(64) ?? 0;
    expect(ex.layout.kernel.subgroups).toBe(probed);
    if (/llvmpipe|lavapipe/i.test(gpu.name)) expect(probed).toBe(8);
    if (probed > 0) expect(code).toMatch(lanes < probed ? /subgroupShuffleXor/ : /subgroupAdd/);
    await compareWithReference(model, mode, { ...opts, kernel: gpuForm(lanes) }, 8, all);
  }, 300_000);

  it.each(['f32', 'q8_0', 'q4_0', 'q4_k'] as const)('%s: the batched forward with 32 and 4 lanes a row, without subgroups, without padding, matches the reference', async (type) => {
    // hidden 512: q4_k rows of two super-blocks.
    const model = syntheticModel({ ...shape, dim: 256, hiddenDim: 512, nHeads: 8, nKvHeads: 4, headDim: 32 }, 32, type);
    const tokens = Array.from({ length: 37 }, (_, i) => (i * 29 + 3) % model.config.vocabSize);
    // q4_k: the default form only (llvmpipe compiles each q4_k kernel of the GPU form for a minute
    // or two; packed.test.ts runs every encoding in the GPU form's decode).
    const forms = type === 'q4_k' ? [gpuForm(32)] : [gpuForm(32), gpuForm(4), gpuForm(32, 0), gpuForm(8, undefined, false)];
    for (const kernel of forms) {
      const ex = (await createExecutor(model, 'looped', testDevice, { kernel, poison: true, tokensPerDispatch: 4 })) as GpuExecutor;
      all.push(ex);
      // The GPU style pads the staged rows of the batched matmul too: a word per 32 columns.
      const { BT, BTS } = ex.batch.layout.consts;
      expect(BTS).toBe(kernel.padStaging === false ? BT : BT + Math.ceil(BT / 32));
      await compareBatchedWithReference(model, ex, tokens);
    }
    if (type !== 'q4_k') await compareWithReference(model, 'looped', { kernel: gpuForm(32), tokensPerDispatch: 4 }, 4, all);
  }, 600_000);
});

describe('the default prefill chunk', () => {
  it('is 32 tokens on CPU adapters where whole rows of the model width still fit the tile, else 16; 32 on GPUs', () => {
    const kernel = { wg: 8, lanes: 1, style: 'cpu' as const };
    const small = makeLayout(syntheticModel(shape, 3).config, kernel, 64, 16384);
    expect(defaultChunk(small, 32768, true)).toBe(32);
    expect(batchLayout(small, 32768, 32).tileCols).toBeGreaterThanOrEqual(64);
    // The stories15M shape: 32 tokens leave 224 of its 288 columns a tile.
    const wide = makeLayout(syntheticModel(SYNTHETIC_SHAPES.stories15M!, 3).config, kernel, 256, 16384);
    expect(batchLayout(wide, 32768, 32).tileCols).toBeLessThan(288);
    expect(defaultChunk(wide, 32768, true)).toBe(16);
    expect(defaultChunk(wide, 32768, false)).toBe(32);
  });
});

describe('the executor and the subgroup form', () => {
  it('default kernels share inputs where the probe passed; asking for it elsewhere is an error', async () => {
    const gpu = await testDevice();
    const model = syntheticModel(shape, 5);
    const ex = (await createExecutor(model, 'looped', testDevice)) as GpuExecutor;
    all.push(ex);
    expect(ex.layout.kernel.subgroups).toBe(gpu.subgroupWidth);
    const { schedule, looped } = kernelSchedules(model.config);
    const code = fusedProgram('looped', { schedule, looped }, ex.layout, 'plain').code;
    if (gpu.subgroupWidth > 0) {
      expect(code.startsWith('enable subgroups;')).toBe(true);
      expect(code).toMatch(/subgroupBroadcast/);
    }
    const off = (await createExecutor(model, 'per-op', testDevice, { kernel: { subgroups: 0 } })) as GpuExecutor;
    all.push(off);
    expect(perOpProgram(schedule, off.layout).code).not.toMatch(/subgroup/);
    // A width the probe did not find, or a workgroup size it has not run at: errors naming the option.
    expect(() => adapterKernel(gpu, { subgroups: 2 * Math.max(4, gpu.subgroupWidth) })).toThrow(/cannot use subgroups of/);
    expect(() => adapterKernel(gpu, { subgroups: 8, wg: 128 })).toThrow(/subgroups of 8 \(not measured at 128 invocations/);
    // Two lanes a row: they sum with subgroup operations where the probe passed.
    expect(adapterKernel(gpu, { lanes: 2 }).subgroups).toBe(gpu.subgroupWidth);
    // The GPU form at a workgroup size the probe has not run at: no subgroups.
    expect(adapterKernel(gpu, { style: 'gpu', wg: 128, lanes: 32 }).subgroups).toBe(0);
  }, 300_000);

  it.each([
    ['per-op', 'dim 64', {}, shape],
    ['per-layer', 'dim 64', {}, shape],
    ['looped', 'dim 64', {}, shape],
    ['looped', 'dim 64', { tokensPerDispatch: 4 }, shape],
    ['looped', 'dim 64', { kernel: { texture: false } }, shape],
    ['looped', 'dim 64', { kernel: { subgroups: 0 } }, shape],
    ['per-layer', 'dim 36', {}, odd],
    ['looped', 'dim 36', { tokensPerDispatch: 4 }, odd],
  ] as const)('%s, %s, %j, matches the reference', async (mode, _name, opts, s) => {
    await compareWithReference(syntheticModel(s, 21), mode, opts, 8, all);
  }, 300_000);

  it.each([
    ['looped', 'dim 64', {}, shape],
    ['per-op', 'dim 64', {}, shape],
    ['looped', 'dim 36', {}, odd],
    ['looped', 'dim 64', { subgroups: 0 }, shape],
  ] as const)('the batched forward, %s, %s, kernel %j, matches the reference', async (mode, _name, kernel, s) => {
    const model = syntheticModel(s, 22);
    const ex = await createExecutor(model, mode, testDevice, { kernel, poison: true });
    all.push(ex);
    // 37 tokens: a full chunk of 32 (16 where the default chunk is 16) and a partial one.
    await compareBatchedWithReference(model, ex, Array.from({ length: 37 }, (_, i) => (i * 53 + 7) % model.config.vocabSize));
  }, 300_000);

  it.each(['q8_0', 'q4_0'] as const)('%s rows use the subgroup unit dot; decode and the batched forward match the reference', async (type) => {
    const gpu = await testDevice();
    // dim 64 and hidden 192: rows of 2 and 6 blocks of 32.
    const model = syntheticModel({ ...shape, hiddenDim: 192 }, 23, type);
    const ex = (await createExecutor(model, 'looped', testDevice, { tokensPerDispatch: 4, poison: true })) as GpuExecutor;
    all.push(ex);
    const { schedule, looped } = kernelSchedules(model.config);
    if (gpu.subgroupWidth > 0) expect(fusedProgram('looped', { schedule, looped }, ex.layout, 'plain').code).toMatch(new RegExp(`fn sud_${type}x32_w_attn`));
    await compareWithReference(model, 'per-layer', {}, 6, all);
    await compareWithReference(model, 'looped', { tokensPerDispatch: 4 }, 6, all);
    await compareBatchedWithReference(model, ex, Array.from({ length: 37 }, (_, i) => (i * 31 + 5) % model.config.vocabSize));
  }, 300_000);
});
