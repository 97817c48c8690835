/**
 * Step overheads (engine/overheads.ts): the launch and round-trip split is recovered from a
 * submit of known cost, and an executor measures its own kernels (per-op launches 44 kernels a
 * step, looped one).
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import type { GpuExecutor } from '../../src/engine/gpu-executor.ts';
import { measureOverheads, medianOverheads } from '../../src/engine/overheads.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import { loadModel } from '../../src/loader/index.ts';
import { modelsDir } from '../helpers/paths.ts';
import { testDevice, withDispatches } from '../helpers/gpu.ts';

const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

describe('step overheads', () => {
  it('splits a submit of 4 ms plus 1 ms a step into its launch and round trip', async () => {
    let clock = 0;
    // Every third submit is slowed by 3 ms (a busy machine): the medians ignore it.
    let n = 0;
    const o = await measureOverheads(async (copies) => { clock += 4 + copies + (++n % 3 === 0 ? 3 : 0); }, 9, () => clock);
    expect(o.launch * 1e3).toBeCloseTo(1, 9);
    expect(o.roundTrip * 1e3).toBeCloseTo(4, 9);
  });

  it('combines rounds as the median step and its median round trip, not two unrelated medians', () => {
    // Launch and round trip trading off between rounds (a slow empty submit shrinks the launch).
    const rounds = [{ launch: 0.05e-3, roundTrip: 0.2e-3 }, { launch: 0.15e-3, roundTrip: 0.1e-3 }, { launch: 0.18e-3, roundTrip: 0.12e-3 }];
    const o = medianOverheads(rounds);
    expect(o.roundTrip).toBeCloseTo(0.12e-3, 12);
    // The median step is 0.25 ms (0.25, 0.25, 0.30); the medians apart would sum to 0.27.
    expect(o.launch + o.roundTrip).toBeCloseTo(0.25e-3, 12);
    expect(o.launch).toBeCloseTo(0.13e-3, 12);
    // One round is itself.
    const one = medianOverheads([rounds[1]!]);
    expect(one.roundTrip).toBe(rounds[1]!.roundTrip);
    expect(one.launch).toBeCloseTo(rounds[1]!.launch, 15);
    expect(() => medianOverheads([])).toThrow(/no rounds/);
  });

  it("an executor measures its own mode's kernels: per-op launches 44 kernels a step, looped one", async () => {
    const model = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
    const perOp = (await createExecutor(model, 'per-op', testDevice)) as GpuExecutor;
    const looped = (await createExecutor(model, 'looped', testDevice)) as GpuExecutor;
    all.push(perOp, looped);
    const counted = { ...looped.stats };
    // What the measuring submits dispatch, counted at the pass encoder (not timed).
    const dispatchesOf = async (ex: GpuExecutor) => {
      let n = 0;
      const o = await withDispatches(
        (real) =>
          function (this: GPUComputePassEncoder, ...args: unknown[]) {
            n++;
            return real.apply(this, args);
          },
        () => ex.overheads(5),
      );
      return { o, n };
    };
    const a = await dispatchesOf(perOp);
    const b = await dispatchesOf(looped);
    // Its own measuring submits are not the executor's work.
    expect(looped.stats).toEqual(counted);
    for (const { o } of [a, b]) {
      expect(Number.isFinite(o.launch) && Number.isFinite(o.roundTrip)).toBe(true);
      expect(o.roundTrip).toBeGreaterThan(0);
    }
    // measureOverheads with 5 repeats: a warm-up and 5 empty submits, then a warm-up and 5
    // submits of one step: 6 steps, each the mode's own kernels (per-op 8 x 5 + 4, looped 1).
    expect(a.n).toBe(6 * 44);
    expect(b.n).toBe(6);
    // The executor still decodes after the empty steps (its control words were cleared).
    expect(await looped.decode([1], 0, 4, GREEDY)).toHaveLength(4);
  }, 120_000);
});
