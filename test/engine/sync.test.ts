/**
 * Grid synchronisation on a CPU adapter: several co-resident workgroups handing activations
 * to each other through atomics across grid barriers (a stale read would show as a logits
 * mismatch), dispatches larger than the device holds at once, and forced barrier timeouts that
 * must fall back to per-op dispatches with identical tokens and no hang.
 */
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import type { GpuExecutor } from '../../src/engine/gpu-executor.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import { loadModel } from '../../src/loader/index.ts';
import { syntheticModel } from '../../src/loader/synthetic.ts';
import type { LoadedModel } from '../../src/loader/types.ts';
import { relError, testDevice } from '../helpers/gpu.ts';
import { modelsDir } from '../helpers/paths.ts';

// Long enough for a second CPU thread to pick up a workgroup before the poll closes.
const LONG_POLL = 1 << 22;
const all: Executor[] = [];
let stories: LoadedModel;
let reference: number[];

beforeAll(async () => {
  stories = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
  reference = await (await createExecutor(stories, 'reference', testDevice)).decode([1], 0, 64, GREEDY);
});
afterAll(() => all.forEach((e) => e.destroy()));

describe('grid synchronisation', () => {
  it.each(['looped', 'per-layer'] as const)(
    '%s: two workgroups, activations through atomics, 120 teacher-forced steps equal the reference',
    async (mode) => {
      // Wider than stories260K so that every stage splits over both workgroups.
      const model = syntheticModel(
        { dim: 128, hiddenDim: 344, nLayers: 4, nHeads: 8, nKvHeads: 4, headDim: 16, vocabSize: 1024, seqLen: 128, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false },
        5,
      );
      const ref = await createExecutor(model, 'reference', testDevice);
      const ex = (await createExecutor(model, mode, testDevice, { groups: 2, pollSpins: LONG_POLL, poison: true })) as GpuExecutor;
      all.push(ex);
      let joined = 0;
      for (let p = 0; p < 120; p++) {
        const tok = (p * 131 + 7) % 1024;
        const want = await ref.forward(tok, p);
        const got = await ex.forward(tok, p);
        expect(relError(got, want), `position ${p}`).toBeLessThan(1e-4);
        joined = Math.max(joined, ex.lastDiscovered);
      }
      expect(ex.stats.fallbacks).toBe(0);
      expect(joined).toBe(2); // both workgroups really took part
    },
    300_000,
  );

  it('a dispatch of 16 workgroups on a 2-core adapter: late ones leave, tokens equal the reference', async () => {
    const ex = (await createExecutor(stories, 'looped', testDevice, { groups: 16, pollSpins: 1 << 18, tokensPerDispatch: 8 })) as GpuExecutor;
    all.push(ex);
    const got = await ex.decode([1], 0, 64, GREEDY);
    expect(got).toEqual(reference);
    expect(ex.stats.fallbacks).toBe(0);
    expect(ex.stats.workgroups).toBe(16);
    const gpu = await testDevice();
    if (gpu.cpu) {
      // A CPU adapter runs at most one workgroup per thread at a time, and the ticket holders
      // spin until the step ends: every workgroup beyond the threads arrives late and leaves.
      expect(ex.lastDiscovered).toBeGreaterThanOrEqual(1);
      expect(ex.lastDiscovered).toBeLessThanOrEqual(availableParallelism());
      expect(ex.lastDiscovered).toBeLessThan(16);
    } else {
      // A GPU holds 16 small workgroups at once: all of them take part.
      expect(ex.lastDiscovered).toBe(16);
    }
  }, 300_000);

  it.each(['looped', 'per-layer'] as const)(
    '%s: a barrier that times out falls back to per-op dispatches with identical tokens',
    async (mode) => {
      const logs: string[] = [];
      const ex = await createExecutor(stories, mode, testDevice, {
        groups: 2, pollSpins: LONG_POLL, spinBound: 0, tokensPerDispatch: mode === 'looped' ? 4 : 1, log: (s) => logs.push(s),
      });
      all.push(ex);
      const t0 = performance.now();
      const got = await ex.decode([1], 0, 64, GREEDY);
      expect(got).toEqual(reference);
      expect(ex.stats.fallbacks).toBeGreaterThan(0);
      expect(logs.some((l) => /timed out/.test(l))).toBe(true);
      expect(performance.now() - t0).toBeLessThan(120_000);
    },
    300_000,
  );
});
