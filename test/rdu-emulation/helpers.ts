import { expect } from 'vitest';

/** |actual - expected| <= rel * |expected|, with a message that shows both. */
export function expectWithin(actual: number, expected: number, rel: number, what = ''): void {
  const err = Math.abs(actual - expected) / Math.abs(expected);
  expect(err, `${what} ${actual} vs ${expected} (tolerance ${rel * 100}%)`).toBeLessThanOrEqual(rel);
}

export function expectInRange(actual: number, lo: number, hi: number, what = ''): void {
  expect(actual, `${what} ${actual} not in [${lo}, ${hi}]`).toBeGreaterThanOrEqual(lo);
  expect(actual, `${what} ${actual} not in [${lo}, ${hi}]`).toBeLessThanOrEqual(hi);
}

/** Spearman rank correlation. */
export function spearman(a: number[], b: number[]): number {
  const rank = (xs: number[]): number[] => {
    const idx = xs.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(xs.length);
    idx.forEach(([, i], k) => (r[i] = k));
    return r;
  };
  const ra = rank(a);
  const rb = rank(b);
  const n = a.length;
  const d2 = ra.reduce((s, r, i) => s + (r - rb[i]!) ** 2, 0);
  return 1 - (6 * d2) / (n * (n * n - 1));
}
