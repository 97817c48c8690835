import { describe, expect, it } from 'vitest';
import { argmax, orderKey, pcgHash, sample, uniformAt, validateSampling } from '../../src/engine/sampler.ts';
import { flagMessage } from '../../src/cli/main.ts';
import { KloopError, OptionError } from '../../src/errors.ts';

function randomLogits(n: number, seed: number): Float32Array {
  const l = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = pcgHash(s + i);
    l[i] = (s / 2 ** 32) * 6 - 3;
  }
  return l;
}

describe('sampler', () => {
  it('greedy is argmax with the first index winning a tie', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(sample(Float32Array.from([0, 5, 5]), { temperature: 0, topK: 0, topP: 1, seed: 7 }, 0)).toBe(1);
  });

  it('orders floats monotonically', () => {
    const xs = [-Infinity, -3.5, -1e-30, -0, 0, 1e-30, 2, 1e30, Infinity];
    for (let i = 1; i < xs.length; i++) expect(orderKey(xs[i])).toBeGreaterThanOrEqual(orderKey(xs[i - 1]));
    expect(orderKey(-1)).toBeLessThan(orderKey(1));
  });

  it('draws the same tokens for the same seed and different ones for another', () => {
    const l = randomLogits(512, 3);
    const o = { temperature: 1, topK: 0, topP: 1, seed: 42 };
    const a = Array.from({ length: 50 }, (_, p) => sample(l, o, p));
    const b = Array.from({ length: 50 }, (_, p) => sample(l, o, p));
    const c = Array.from({ length: 50 }, (_, p) => sample(l, { ...o, seed: 43 }, p));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('follows softmax(logits / T) (chi-square over 40,000 draws)', () => {
    const logits = Float32Array.from([2.0, 1.0, 0.5, 0.0, -1.0, -2.0]);
    const T = 0.8;
    const z = logits.reduce((s, v) => s + Math.exp(v / T), 0);
    const p = Array.from(logits, (v) => Math.exp(v / T) / z);
    const n = 40000;
    const counts = new Array(logits.length).fill(0);
    for (let i = 0; i < n; i++) counts[sample(logits, { temperature: T, topK: 0, topP: 1, seed: 1234 }, i)]++;
    const chi2 = counts.reduce((s, c, i) => s + (c - n * p[i]) ** 2 / (n * p[i]), 0);
    // 5 degrees of freedom: the 99.9% quantile is 20.5.
    expect(chi2).toBeLessThan(20.5);
  });

  it('top-k keeps the k largest; top-p keeps the smallest set holding p of the mass', () => {
    const logits = Float32Array.from([3, 2.9, 1, 0, -1, -5]);
    const draws = (o: { topK: number; topP: number }) =>
      new Set(Array.from({ length: 3000 }, (_, i) => sample(logits, { temperature: 1, seed: 9, ...o }, i)));
    expect([...draws({ topK: 2, topP: 1 })].sort()).toEqual([0, 1]);
    // Probabilities: 0.47, 0.43, 0.06, ...: p = 0.5 needs the top two.
    expect([...draws({ topK: 0, topP: 0.5 })].sort()).toEqual([0, 1]);
    expect([...draws({ topK: 0, topP: 0.3 })].sort()).toEqual([0]);
  });

  it('uniform draws are in [0, 1) and spread out', () => {
    let s = 0;
    for (let p = 0; p < 10000; p++) {
      const u = uniformAt(5, p);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      s += u;
    }
    expect(s / 10000).toBeGreaterThan(0.48);
    expect(s / 10000).toBeLessThan(0.52);
  });

  it('rejects bad options with an OptionError naming the option (the CLI maps it to its flag)', () => {
    expect(() => validateSampling({ temperature: -1, topK: 0, topP: 1, seed: 0 })).toThrow(/^temperature: /);
    expect(() => validateSampling({ temperature: 1, topK: 1.5, topP: 1, seed: 0 })).toThrow(KloopError);
    expect(() => validateSampling({ temperature: 1, topK: 0, topP: 0, seed: 0 })).toThrow(/^topP: /);
    expect(() => validateSampling({ temperature: 1, topK: 0, topP: 1, seed: -2 })).toThrow(OptionError);
    const e = new OptionError('topP', 'must be in (0, 1] (got 0)');
    expect(flagMessage(e)).toBe('--top-p: must be in (0, 1] (got 0)');
  });
});
