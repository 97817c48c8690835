/**
 * The batched forward (T tokens per weight read) against the CPU reference: the logits of a
 * 200-token teacher-forced sequence equal the step-by-step ones and the fixture's in every GPU
 * mode, on float32 and on packed (Q4_0) weights; greedy continuations after a batched prefill
 * equal the reference's.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import { createGenerator } from '../../src/engine/generate.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import { loadModel } from '../../src/loader/index.ts';
import type { LoadedModel } from '../../src/loader/types.ts';
import { argmaxOf, relError, testDevice } from '../helpers/gpu.ts';
import { fixturesDir, modelsDir } from '../helpers/paths.ts';

const MODELS = [
  { name: 'stories260K', file: path.join(modelsDir, 'stories260K', 'stories260K.bin'), fixture: path.join(fixturesDir, 'stories260K', 'bos_only') },
  { name: 'stories260K-Q4_0', file: path.join(modelsDir, 'quant', 'stories260K-Q4_0.gguf'), fixture: path.join(fixturesDir, 'quant', 'stories260K-Q4_0') },
];
const POSITIONS = 200;

const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

describe.each(MODELS)('batched forward on $name', ({ name, file, fixture }) => {
  let model: LoadedModel;
  let seq: number[];
  let want: Float32Array[];
  beforeAll(async () => {
    model = await loadModel(file);
    const ref = await createExecutor(model, 'reference', testDevice);
    // The sequence: BOS and the reference's greedy continuation, fed back teacher-forced.
    seq = [1, ...(await ref.decode([1], 0, POSITIONS - 1, GREEDY))];
    want = await ref.forwardMany!(seq, 0, 'all');
  }, 120_000);

  it.each(['per-op', 'per-layer', 'looped'] as const)('%s: 200 positions equal step-by-step and the fixture', async (mode) => {
    // Poisoned: every pass starts from NaN activations and logits rows (batch-runner.ts).
    const ex = await createExecutor(model, mode, testDevice, { poison: true });
    all.push(ex);
    const got = await ex.forwardMany!(seq, 0, 'all');
    expect(got.length).toBe(POSITIONS);
    const meta = JSON.parse(fs.readFileSync(`${fixture}.json`, 'utf8')) as { positions: number; tokens: number[] };
    const raw = fs.readFileSync(`${fixture}.logits.f32`);
    const fix = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const V = model.config.vocabSize;
    let worstRef = 0;
    let worstStep = 0;
    let worstFix = 0;
    for (let p = 0; p < POSITIONS; p++) {
      const step = await ex.forward(seq[p]!, p);
      expect(got[p]!.every(Number.isFinite), `position ${p}: unwritten logits`).toBe(true);
      worstRef = Math.max(worstRef, relError(got[p]!, want[p]!));
      worstStep = Math.max(worstStep, relError(got[p]!, step));
      expect(argmaxOf(got[p]!), `top-1 at ${p}`).toBe(argmaxOf(want[p]!));
      if (p < meta.positions && meta.tokens[p] === seq[p] && meta.tokens.slice(0, p + 1).every((t, i) => t === seq[i])) {
        worstFix = Math.max(worstFix, relError(got[p]!, fix.subarray(p * V, (p + 1) * V)));
      }
    }
    console.log(`${name} ${mode} batched (T=${(ex as unknown as { batch: { chunk: number } }).batch.chunk}): max row relative error ${worstRef.toExponential(2)} vs reference, ${worstStep.toExponential(2)} vs step-by-step, ${worstFix.toExponential(2)} vs fixture`);
    expect(worstRef).toBeLessThanOrEqual(1e-4);
    expect(worstStep).toBeLessThanOrEqual(1e-4);
    expect(worstFix).toBeLessThanOrEqual(1e-4);
  }, 900_000);

  it('greedy continuations after a batched prefill equal the reference (looped K=16)', async () => {
    const prompt = seq.slice(0, 40);
    const ref = await createExecutor(model, 'reference', testDevice);
    const expected = await ref.decode(prompt, 0, prompt.length + 63, GREEDY);
    const ex = await createExecutor(model, 'looped', testDevice, { tokensPerDispatch: 16, poison: true });
    all.push(ex);
    const g = createGenerator(model, ex, { promptTokens: prompt, maxTokens: 64, sampling: GREEDY, ignoreEos: true, chunk: 16 });
    const got: number[] = [];
    for await (const t of g) got.push(t.id);
    expect(got).toEqual(expected);
    // The prefill was batched: a few dispatches, not one per prompt token.
    expect(g.result().prefillDispatches).toBeLessThanOrEqual(Math.ceil(prompt.length / 16) + 1);
  }, 900_000);
});

describe('batched forward in the GPU kernel form', () => {
  // What a GPU runs (32 invocations per matmul row with their reductions, several workgroups
  // handing activations over through atomics, grid barriers), checked here on any adapter.
  it('looped, 32 lanes per row, two workgroups: 40 positions equal the reference', async () => {
    const model = await loadModel(MODELS[0]!.file);
    const ref = await createExecutor(model, 'reference', testDevice);
    const seq = [1, ...(await ref.decode([1], 0, 39, GREEDY))];
    const want = await ref.forwardMany!(seq, 0, 'all');
    const ex = await createExecutor(model, 'looped', testDevice, { groups: 2, kernel: { style: 'gpu', wg: 64, lanes: 32 }, poison: true });
    all.push(ex);
    const got = await ex.forwardMany!(seq, 0, 'all');
    for (const [p, g] of got.entries()) expect(g.every(Number.isFinite), `position ${p}: unwritten logits`).toBe(true);
    const worst = Math.max(...got.map((g, p) => relError(g, want[p]!)));
    expect(worst).toBeLessThanOrEqual(1e-4);
    expect(ex.stats.fallbacks).toBe(0);
  }, 900_000);
});

describe('batched forward: bad input', () => {
  it('a sequence past the context is a clear error', async () => {
    const model = await loadModel(MODELS[0]!.file);
    const ex = await createExecutor(model, 'per-op', testDevice, { context: 8 });
    all.push(ex);
    await expect(ex.forwardMany!(Array.from({ length: 9 }, () => 1), 0, 'none')).rejects.toThrow(/past the context of 8/);
  });
});
