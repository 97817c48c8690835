/**
 * Poisoning (GpuExecutor's `poison` option) reaches the batched forward: with the kernels made
 * to do nothing, a poisoned pass returns NaN rows instead of the previous pass's logits, so a
 * check on poisoned output cannot pass on stale rows.
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import { loadModel } from '../../src/loader/index.ts';
import { modelsDir } from '../helpers/paths.ts';
import { testDevice, withDispatches } from '../helpers/gpu.ts';

const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

/** Runs `f` with every compute dispatch of the device dropped (the passes still submit and read back). */
const withoutDispatches = <T>(f: () => Promise<T>): Promise<T> => withDispatches(() => () => undefined, f);

describe('poisoned activations', () => {
  /** The logits of a pass, then of the same pass with the kernels made to do nothing. */
  async function twoPasses(poison: boolean): Promise<{ first: Float32Array[]; again: Float32Array[] }> {
    const model = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
    const ex = await createExecutor(model, 'looped', testDevice, { poison });
    all.push(ex);
    const first = await ex.forwardMany!([1, 403, 407], 0, 'all');
    expect(first.every((r) => r.every(Number.isFinite))).toBe(true);
    return { first, again: await withoutDispatches(() => ex.forwardMany!([1, 403, 407], 0, 'all')) };
  }

  it('without poison, a batched pass that computes nothing returns the previous rows (what a check must not accept)', async () => {
    const { first, again } = await twoPasses(false);
    expect(again.map((r) => Array.from(r))).toEqual(first.map((r) => Array.from(r)));
  }, 300_000);

  it('with poison, the same pass returns NaN rows', async () => {
    const { again } = await twoPasses(true);
    expect(again).toHaveLength(3);
    for (const r of again) expect(r.every(Number.isNaN)).toBe(true);
  }, 300_000);
});
