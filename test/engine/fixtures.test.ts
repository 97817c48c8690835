/**
 * End to end on the real models: every executor against the independent reference logits and
 * greedy tokens (../shared/fixtures), and against each other for 200 greedy steps.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Executor, type Mode, createExecutor } from '../../src/engine/executor.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import { convertToHF } from '../../src/loader/convert.ts';
import { loadModel } from '../../src/loader/index.ts';
import type { LoadedModel } from '../../src/loader/types.ts';
import { fixturesDir, modelsDir } from '../helpers/paths.ts';
import { argmaxOf, relError, testDevice } from '../helpers/gpu.ts';

interface Fixture {
  prompt: string;
  prompt_tokens: number[];
  tokens: number[];
  positions: number;
}

const FIXTURES = ['once_upon_a_time', 'bos_only', 'quotes_newline'];
const fixture = (name: string) => {
  const meta = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'stories260K', `${name}.json`), 'utf8')) as Fixture;
  const raw = fs.readFileSync(path.join(fixturesDir, 'stories260K', `${name}.logits.f32`));
  return { meta, logits: new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4) };
};

const MODES: { mode: Mode; k: number; tol: number }[] = [
  { mode: 'reference', k: 1, tol: 1e-5 },
  { mode: 'per-op', k: 1, tol: 1e-4 },
  { mode: 'per-layer', k: 1, tol: 1e-4 },
  { mode: 'looped', k: 1, tol: 1e-4 },
  { mode: 'looped', k: 16, tol: 1e-4 },
];

let stories: LoadedModel;
const executors = new Map<string, Executor>();
async function executor(model: LoadedModel, mode: Mode, k: number): Promise<Executor> {
  const key = `${model.name}|${mode}|${k}`;
  let ex = executors.get(key);
  if (!ex) {
    ex = await createExecutor(model, mode, testDevice, { tokensPerDispatch: k, poison: true });
    executors.set(key, ex);
  }
  return ex;
}

beforeAll(async () => {
  stories = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
});
afterAll(() => {
  for (const ex of executors.values()) ex.destroy();
});

describe.each(MODES)('stories260K, $mode (K=$k)', ({ mode, k, tol }) => {
  it.each(FIXTURES)('%s: logits, top-1 and greedy tokens match the fixture', async (name) => {
    const { meta, logits } = fixture(name);
    const ex = await executor(stories, mode, k);
    const V = stories.config.vocabSize;
    let worst = 0;
    let agree = 0;
    for (let p = 0; p < meta.positions; p++) {
      const got = await ex.forward(meta.tokens[p], p);
      expect(got.every(Number.isFinite)).toBe(true); // poisoned activations would show as NaN
      const ref = logits.subarray(p * V, (p + 1) * V);
      worst = Math.max(worst, relError(got, ref));
      if (argmaxOf(got) === argmaxOf(ref)) agree++;
    }
    expect(worst).toBeLessThanOrEqual(tol);
    expect(agree).toBe(meta.positions);
    const P = meta.prompt_tokens.length;
    const generated = await ex.decode(meta.prompt_tokens, 0, meta.tokens.length - 1, GREEDY);
    expect(generated).toEqual(meta.tokens.slice(P));
  }, 300_000);
});

describe('200 greedy steps agree across every executor', () => {
  it.each([
    ['stories260K', 'stories260K/stories260K.bin', 200],
    ['aidreams260K', 'aidreams260K/aidreams260K.bin', 127], // its context is 128 positions
  ])('%s', async (_name, file, steps) => {
    const model = file.startsWith('stories') ? stories : await loadModel(path.join(modelsDir, file));
    const runs: Record<string, number[]> = {};
    for (const { mode, k } of MODES) {
      const ex = await executor(model, mode, k);
      runs[`${mode}:${k}`] = await ex.decode([model.config.bosId], 0, steps, GREEDY);
    }
    const ref = runs['reference:1'];
    expect(ref.length).toBe(steps);
    for (const [name, toks] of Object.entries(runs)) expect(toks, name).toEqual(ref);
  }, 600_000);
});

describe('other formats give the same logits', () => {
  it('GGUF and a converted Hugging Face folder match the .bin within 1e-5', async () => {
    const gguf = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.gguf'));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kloop-hf-'));
    await convertToHF(stories, dir);
    const hf = await loadModel(dir);
    const { meta } = fixture('once_upon_a_time');
    const a = await createExecutor(stories, 'reference', testDevice);
    const b = await createExecutor(gguf, 'reference', testDevice);
    const c = await createExecutor(hf, 'reference', testDevice);
    for (let p = 0; p < meta.positions; p++) {
      const ref = await a.forward(meta.tokens[p], p);
      expect(relError(await b.forward(meta.tokens[p], p), ref)).toBeLessThanOrEqual(1e-5);
      expect(relError(await c.forward(meta.tokens[p], p), ref)).toBeLessThanOrEqual(1e-5);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
