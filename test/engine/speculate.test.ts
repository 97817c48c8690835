/**
 * Speculative decoding: prompt-lookup drafts verified in one batched pass. Greedy output is
 * exactly the non-speculative greedy output (the reference's) for 200 steps (127 on
 * aidreams260K, its whole context) in every GPU mode; the sampled acceptance rule keeps the
 * target distribution (chi-square); bad values are clear errors.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Executor, createExecutor } from '../../src/engine/executor.ts';
import { createGenerator } from '../../src/engine/generate.ts';
import { GREEDY, uniformAt } from '../../src/engine/sampler.ts';
import { acceptOrResample, lookupDraft, speculateRound } from '../../src/engine/speculate.ts';
import { nucleusWeights } from '../../src/engine/sampler.ts';
import { openSession } from '../../src/engine/session.ts';
import { loadModel } from '../../src/loader/index.ts';
import { testDevice } from '../helpers/gpu.ts';
import { modelsDir } from '../helpers/paths.ts';

const all: Executor[] = [];
afterAll(() => all.forEach((e) => e.destroy()));

describe('prompt lookup', () => {
  it('drafts what followed the most recent earlier occurrence of the last n-gram', () => {
    expect(lookupDraft([5, 6, 7, 8, 1, 5, 6], 3)).toEqual([7, 8, 1]);
    expect(lookupDraft([1, 2, 3, 9, 2, 3, 4, 2, 3], 2)).toEqual([4, 2]); // the latest "2 3"
    expect(lookupDraft([1, 2, 3], 4)).toEqual([]);
    expect(lookupDraft([4, 4], 4)).toEqual([]); // a one-token match drafts nothing by default
    expect(lookupDraft([4, 4], 4, 3, 1)).toEqual([4]);
    expect(lookupDraft([4, 4, 4], 4)).toEqual([4]);
  });
});

describe('speculative sampling', () => {
  it('emits tokens distributed as the target (chi-square, 8 tokens, every draft)', () => {
    const w = Float64Array.from([0.3, 2, 0.05, 1, 0.7, 0, 1.5, 0.45]);
    const sum = w.reduce((a, b) => a + b, 0);
    const trials = 20000;
    for (const d of [1, 2, 5]) {
      const counts = new Array(w.length).fill(0);
      for (let i = 0; i < trials; i++) counts[acceptOrResample(w, d, uniformAt(17 + d, i), uniformAt(99 + d, i)).token]++;
      let chi2 = 0;
      w.forEach((x, i) => {
        const e = (trials * x) / sum;
        if (e > 0) chi2 += (counts[i] - e) ** 2 / e;
        else expect(counts[i]).toBe(0);
      });
      // 6 degrees of freedom (7 tokens with mass): the 0.1% critical value is 22.46.
      expect(chi2, `draft ${d}: chi-square ${chi2.toFixed(2)}`).toBeLessThan(22.46);
    }
  });
});

/** The chi-square value a statistic with `df` degrees of freedom exceeds with probability 0.001 (Wilson-Hilferty). */
function chi2Critical(df: number): number {
  const z = 3.0902;
  return df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
}

const MODELS = [
  { name: 'stories260K', file: path.join(modelsDir, 'stories260K', 'stories260K.bin'), steps: 200 },
  { name: 'aidreams260K', file: path.join(modelsDir, 'aidreams260K', 'aidreams260K.bin'), steps: 127 },
];

describe.each(MODELS)('--speculate 4 on $name', ({ file, steps }) => {
  it.each(['per-op', 'per-layer', 'looped'] as const)('%s: greedy tokens equal the non-speculative ones', async (mode) => {
    const model = await loadModel(file);
    const ref = await createExecutor(model, 'reference', testDevice);
    const expected = await ref.decode([1], 0, steps, GREEDY);
    const k = mode === 'looped' ? 16 : 1;
    const ex = await createExecutor(model, mode, testDevice, { tokensPerDispatch: k });
    all.push(ex);
    const g = createGenerator(model, ex, { promptTokens: [1], maxTokens: steps, sampling: GREEDY, ignoreEos: true, chunk: k, speculate: 4 });
    const got: number[] = [];
    for await (const t of g) got.push(t.id);
    expect(got).toEqual(expected);
    const s = g.result().speculation!;
    console.log(`${model.name} ${mode}: ${s.acceptedTokens}/${s.draftTokens} draft tokens accepted in ${s.rounds} verification passes`);
    expect(s.draftTokens).toBeGreaterThan(0);
  }, 900_000);
});

describe('sampled speculation on the model', () => {
  it('the first token of a round is distributed as the sampler says (chi-square over 3000 seeds)', async () => {
    const model = await loadModel(MODELS[0]!.file);
    const ex = await createExecutor(model, 'reference', testDevice);
    // A context whose last token occurred before, so that prompt lookup drafts.
    const ctx = [1, ...(await ex.decode([1], 0, 24, GREEDY))];
    ctx.push(ctx[5]!, ctx[6]!);
    await ex.forwardMany!(ctx.slice(0, -1), 0, 'none');
    const sampling = { temperature: 1, topK: 0, topP: 1, seed: 0 };
    const [logits] = await ex.forwardMany!([ctx[ctx.length - 1]!], ctx.length - 1, 'last');
    const w = nucleusWeights(logits!, sampling);
    const sum = w.reduce((a, b) => a + b, 0);
    const trials = 3000;
    const counts = new Map<number, number>();
    const stats = { draftTokens: 0, acceptedTokens: 0, rounds: 0 };
    for (let seed = 1; seed <= trials; seed++) {
      const out = await speculateRound(ex, ctx, 8, { ...sampling, seed }, 4, stats, model.config.seqLen, 1);
      counts.set(out[0]!, (counts.get(out[0]!) ?? 0) + 1);
    }
    expect(stats.draftTokens).toBe(trials * 4); // every round verified a 4-token draft
    // Bins: every token expected at least 5 times, the rest lumped together.
    let chi2 = 0;
    let bins = 0;
    let restExpected = 0;
    let restSeen = 0;
    w.forEach((x, id) => {
      const e = (trials * x) / sum;
      if (e >= 5) {
        chi2 += ((counts.get(id) ?? 0) - e) ** 2 / e;
        bins++;
      } else {
        restExpected += e;
        restSeen += counts.get(id) ?? 0;
      }
    });
    if (restExpected > 0) {
      chi2 += (restSeen - restExpected) ** 2 / restExpected;
      bins++;
    }
    console.log(`sampled speculation: chi-square ${chi2.toFixed(2)} over ${bins} bins (0.1% critical ${chi2Critical(bins - 1).toFixed(2)}), ${stats.acceptedTokens}/${stats.draftTokens} accepted`);
    expect(bins).toBeGreaterThan(2);
    expect(chi2).toBeLessThan(chi2Critical(bins - 1));
  }, 300_000);
});

describe('--draft-model', () => {
  it('a Q4_0 draft of stories260K (looped K=16): greedy tokens equal the non-speculative ones', async () => {
    const model = await loadModel(MODELS[0]!.file);
    const draft = await loadModel(path.join(modelsDir, 'quant', 'stories260K-Q4_0.gguf'));
    const ref = await createExecutor(model, 'reference', testDevice);
    const expected = await ref.decode([1], 0, 100, GREEDY);
    const s = openSession(model, { device: testDevice, log: () => {} });
    try {
      const g = s.generate({ mode: 'looped', tokensPerDispatch: 16, maxTokens: 100, ignoreEos: true, draftModel: draft, speculate: 4 });
      const got: number[] = [];
      for await (const t of g) got.push(t.id);
      expect(got).toEqual(expected);
      const st = g.result().stats;
      console.log(`stories260K with a Q4_0 draft: ${st.acceptedTokens}/${st.draftTokens} draft tokens accepted`);
      expect(st.acceptedTokens!).toBeGreaterThan(st.draftTokens! / 2);
    } finally {
      await s.dispose();
    }
  }, 900_000);

  it('a draft model with another vocabulary is a clear error', async () => {
    const model = await loadModel(MODELS[0]!.file);
    const other = await loadModel(MODELS[1]!.file);
    const s = openSession(model, { device: testDevice });
    expect(() => s.generate({ mode: 'reference', draftModel: other })).toThrow(/draft model aidreams260K: .*another vocabulary/);
    await s.dispose();
  });
});

describe('speculation: bad input', () => {
  it('--speculate out of range is a clear error', async () => {
    const model = await loadModel(MODELS[0]!.file);
    const ref = await createExecutor(model, 'reference', testDevice);
    expect(() => createGenerator(model, ref, { maxTokens: 4, sampling: GREEDY, speculate: 16 })).toThrow(/speculate: must be an integer in \[0, 15\]/);
    expect(() => createGenerator(model, ref, { maxTokens: 4, sampling: GREEDY, speculate: -1 })).toThrow(/speculate/);
  });
  it('sampled speculation runs on the reference and stays in the vocabulary', async () => {
    const model = await loadModel(MODELS[0]!.file);
    const ref = await createExecutor(model, 'reference', testDevice);
    const g = createGenerator(model, ref, { maxTokens: 48, sampling: { temperature: 0.8, topK: 0, topP: 0.9, seed: 7 }, ignoreEos: true, speculate: 4 });
    const got: number[] = [];
    for await (const t of g) got.push(t.id);
    expect(got.length).toBe(48);
    expect(got.every((t) => t >= 0 && t < model.config.vocabSize)).toBe(true);
  });
});
