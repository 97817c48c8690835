/**
 * Long runs keep memory flat.
 *
 * Context behaviour (what a 10,000-token request does on a 512-token model): generation never
 * wraps. createGenerator stops when the KV cache is full, after context - prompt tokens, with
 * stoppedAt 'context' (maxTokens is a cap, not a promise), and an executor asked for a position
 * past its context rejects with a KloopError. Producing 10,000 tokens therefore means several
 * generations; each one restarts at position 0 on the same executor, overwriting its KV cache.
 *
 * The long runs: 20 generations x 500 tokens = 10,000 tokens on ONE executor, in the reference
 * mode and in the GPU modes (KLOOP_LONG_GPU_TOKENS, default 10,000). After the warm-up (the first
 * half of the generations, at least one) no device object may be created (buffers, bind groups,
 * pipelines...: 0 per token), RSS may not grow by more than 20 MiB and the JS heap by more than
 * 4 MiB (after a forced GC), and every greedy
 * generation must produce the same tokens (no state leaks from one run into the next).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KloopError } from '../../src/errors.ts';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import { createGenerator } from '../../src/engine/generate.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import { loadModel } from '../../src/loader/index.ts';
import type { LoadedModel } from '../../src/loader/types.ts';
import { testDevice } from '../helpers/gpu.ts';
import { modelsDir } from '../helpers/paths.ts';
import { MiB, countCreates, memory } from './helpers.ts';

const RUN = 500;
const REF_TOKENS = Number(process.env.KLOOP_LONG_TOKENS ?? 10_000);
const GPU_TOKENS = Number(process.env.KLOOP_LONG_GPU_TOKENS ?? 10_000);
const RSS_LIMIT = 20 * 2 ** 20;
const HEAP_LIMIT = 4 * 2 ** 20;

let stories: LoadedModel;
const executors: Executor[] = [];

beforeAll(async () => {
  stories = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
});
afterAll(() => executors.forEach((e) => e.destroy()));

async function generate(ex: Executor, maxTokens: number, chunk = 1) {
  const g = createGenerator(stories, ex, { promptTokens: [1], maxTokens, sampling: GREEDY, ignoreEos: true, chunk });
  const ids: number[] = [];
  for await (const t of g) ids.push(t.id);
  return { ids, result: g.result() };
}

/**
 * `total` tokens in generations of RUN tokens on one executor. Returns the memory growth from the
 * end of the first generation to the end of the last, and the device objects created meanwhile.
 */
async function longRun(ex: Executor, total: number, chunk: number, device?: GPUDevice) {
  const runs = Math.ceil(total / RUN);
  const creates = device ? countCreates(device) : undefined;
  const first = await generate(ex, RUN, chunk);
  expect(first.ids).toHaveLength(RUN);
  expect(first.result.stoppedAt).toBe('max-tokens');
  // Warm-up: the first half of the generations (at least one). At 0.8 ms a token the driver's
  // and Dawn's allocators are still growing towards their working set after one generation
  // (lavapipe, 2026-11-30: +15 to +31 MiB over 10,000 tokens measured from the first
  // generation, +21 MiB over 40,000: a plateau, not a per-token leak, which would grow with
  // the tokens measured).
  const warm = Math.max(1, Math.floor(runs / 2));
  for (let r = 1; r < warm; r++) expect((await generate(ex, RUN, chunk)).ids).toEqual(first.ids);
  // Let the device retire the warm-up's work (Dawn frees deferred resources on completion), so
  // the base is not taken with a varying amount of it still in flight on a loaded machine.
  await device?.queue.onSubmittedWorkDone();
  creates?.reset();
  const base = memory();
  const t0 = performance.now();
  let tokens = warm * RUN;
  for (let r = warm; r < runs; r++) {
    const run = await generate(ex, RUN, chunk);
    expect(run.ids, `generation ${r} differs from the first`).toEqual(first.ids);
    tokens += run.ids.length;
  }
  await device?.queue.onSubmittedWorkDone();
  const end = memory();
  const perToken = (performance.now() - t0) / Math.max(1, tokens - warm * RUN);
  const growth = { rss: end.rss - base.rss, heap: end.heapUsed - base.heapUsed, external: end.external - base.external };
  const line =
    `${ex.mode}: ${tokens} tokens in ${runs} generations of ${RUN} on one executor (${perToken.toFixed(2)} ms/token); ` +
    `after warm-up RSS ${MiB(base.rss)} -> ${MiB(end.rss)} MiB (${MiB(growth.rss)}), heap ${MiB(base.heapUsed)} -> ${MiB(end.heapUsed)} MiB ` +
    `(${MiB(growth.heap)}), external ${MiB(growth.external)} MiB; device objects created after warm-up: ${creates ? creates.total() : 'n/a'}`;
  console.log(line);
  return { tokens, growth, created: creates?.total() ?? 0, counts: creates?.counts ?? {} };
}

describe('context', () => {
  it('a 10,000-token request stops at the end of the context (stoppedAt "context"), it does not wrap', async () => {
    const ex = await createExecutor(stories, 'reference', testDevice);
    const { ids, result } = await generate(ex, 10_000);
    expect(stories.config.seqLen).toBe(512);
    expect(ids).toHaveLength(511);
    expect(result.stoppedAt).toBe('context');
    // A longer prompt leaves fewer positions.
    const g = createGenerator(stories, ex, { promptTokens: [1, 403, 407, 261], maxTokens: 10_000, sampling: GREEDY, ignoreEos: true });
    let n = 0;
    for await (const _ of g) n++;
    expect(n).toBe(508);
    expect(g.result().stoppedAt).toBe('context');
    // The executor itself refuses positions past the context.
    await expect(ex.decode([1], 511, 2, GREEDY)).rejects.toThrow(KloopError);
    await expect(ex.decode([1], 511, 2, GREEDY)).rejects.toThrow(/past the context of 512 tokens/);
  });

  it('looped (K=16): the last chunk is cut to the context and the run stops there', async () => {
    const gpu = await testDevice();
    const ex = await createExecutor(stories, 'looped', async () => gpu, { tokensPerDispatch: 16 });
    executors.push(ex);
    const { ids, result } = await generate(ex, 10_000, 16);
    expect(ids).toHaveLength(511);
    expect(result.stoppedAt).toBe('context');
    await expect(ex.decode([1], 510, 3, GREEDY)).rejects.toThrow(/past the context/);
  }, 180_000);
});

describe('memory stays flat over long runs', () => {
  it(`reference: ${REF_TOKENS} tokens`, async () => {
    const ex = await createExecutor(stories, 'reference', testDevice);
    const r = await longRun(ex, REF_TOKENS, 1);
    expect(r.tokens).toBeGreaterThanOrEqual(REF_TOKENS);
    expect(r.growth.rss).toBeLessThan(RSS_LIMIT);
    expect(r.growth.heap).toBeLessThan(HEAP_LIMIT);
  }, 180_000);

  it.each([
    ['per-op', 1],
    ['looped', 16],
  ] as const)(`%s: ${GPU_TOKENS} tokens, GPU buffers created once and reused`, async (mode, k) => {
    const gpu = await testDevice();
    const setup = countCreates(gpu.device);
    const ex = await createExecutor(stories, mode, async () => gpu, k > 1 ? { tokensPerDispatch: k } : {});
    executors.push(ex);
    const buffersAtSetup = setup.counts.createBuffer ?? 0;
    expect(buffersAtSetup).toBeGreaterThan(0);
    const r = await longRun(ex, GPU_TOKENS, k, gpu.device);
    expect(r.tokens).toBeGreaterThanOrEqual(GPU_TOKENS);
    expect(r.counts, 'device objects created after warm-up').toEqual({});
    expect(r.created).toBe(0);
    expect(r.growth.rss).toBeLessThan(RSS_LIMIT);
    expect(r.growth.heap).toBeLessThan(HEAP_LIMIT);
  }, 600_000);
});
