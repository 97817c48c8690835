/**
 * The quantized GGUF files llama.cpp wrote, in every GPU mode: the packed weights decoded inside
 * the kernels reproduce the fixture logits (float32 llama2.c on gguf-py's dequantization of the
 * same file), teacher-forcing the fixture's tokens with activations poisoned before each step;
 * and greedy continuations are identical across the reference, per-op, per-layer, looped and
 * looped K=16.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import { loadModel } from '../../src/loader/index.ts';
import { modelMatrices, typeSummary } from '../../src/loader/quant.ts';
import { argmaxOf, relError, testDevice } from '../helpers/gpu.ts';
import { fixturesDir, modelsDir } from '../helpers/paths.ts';

const FILES = ['stories260K-Q4_0', 'stories260K-Q4_K_M', 'synthetic-k512-Q4_K_M', 'synthetic-k512-Q6_K'];

const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

describe.each(FILES)('%s on the GPU', (name) => {
  const file = path.join(modelsDir, 'quant', `${name}.gguf`);
  const meta = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'quant', `${name}.json`), 'utf8')) as { positions: number; tokens: number[]; prompt_tokens: number[] };
  const raw = fs.readFileSync(path.join(fixturesDir, 'quant', `${name}.logits.f32`));
  const ref = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);

  it.each(['per-op', 'per-layer', 'looped'] as const)('%s reproduces the fixture logits', async (mode) => {
    const model = await loadModel(file);
    const ex = await createExecutor(model, mode, testDevice, { poison: true });
    all.push(ex);
    const V = model.config.vocabSize;
    let worst = 0;
    for (let p = 0; p < meta.positions; p++) {
      const got = await ex.forward(meta.tokens[p]!, p);
      const want = ref.subarray(p * V, (p + 1) * V);
      expect(got.every(Number.isFinite), `position ${p}: unwritten logits`).toBe(true);
      worst = Math.max(worst, relError(got, want));
      expect(argmaxOf(got), `top-1 at position ${p}`).toBe(argmaxOf(want));
    }
    console.log(`${name} ${mode}: ${typeSummary(modelMatrices(model.weights))}; max row relative error ${worst.toExponential(2)} over ${meta.positions} positions`);
    expect(worst).toBeLessThanOrEqual(1e-4);
  }, 600_000);

  it('greedy continuations are identical in every mode', async () => {
    const model = await loadModel(file);
    const steps = Math.min(64, model.config.seqLen);
    const runs: Record<string, number[]> = {};
    for (const [mode, k] of [['reference', 1], ['per-op', 1], ['per-layer', 1], ['looped', 1], ['looped', 16]] as const) {
      const ex = await createExecutor(model, mode, testDevice, { tokensPerDispatch: k });
      all.push(ex);
      runs[`${mode}:${k}`] = await ex.decode(meta.prompt_tokens, 0, steps, GREEDY);
    }
    for (const [k, v] of Object.entries(runs)) expect(v, k).toEqual(runs['reference:1']);
    // The fixture's own greedy tokens (after the prompt) are the reference's continuation.
    const fixtureGreedy = meta.tokens.slice(meta.prompt_tokens.length, meta.positions + 1);
    expect(runs['reference:1'].slice(0, fixtureGreedy.length)).toEqual(fixtureGreedy);
  }, 600_000);
});
