/**
 * Loader and tokenizer fuzzing: corrupted variants of the real model and tokenizer files
 * (test/fuzz/corpus.ts), each loaded in-process with a time bound. Every variant must end in a
 * clear error (a one-line KloopError naming the file) or, when the mutation can leave a
 * well-formed file, load with finite weights and a working tokenizer. Anything else (another
 * exception type, a hang, a large allocation, a corrupt file accepted, NaN weights accepted)
 * fails the suite.
 *
 * KLOOP_FUZZ_SEED (default 1) picks the variants; KLOOP_FUZZ_SCALE (default 1) multiplies
 * their number (1278 at 1); KLOOP_FUZZ_HANG_MS (default 3000) bounds each variant's CPU time and
 * KLOOP_FUZZ_WALL_MS (default 30000) its wall-clock time;
 * KLOOP_FUZZ_VERBOSE prints memory every 100 variants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAILURES, MEM_LIMIT, type Outcome, type Result, makeTargets, runVariant } from './run.ts';
import { type Target, variants } from './corpus.ts';

const SEED = Number(process.env.KLOOP_FUZZ_SEED ?? 1);
const SCALE = Number(process.env.KLOOP_FUZZ_SCALE ?? 1);
const VERBOSE = !!process.env.KLOOP_FUZZ_VERBOSE;

describe('loader fuzzing', () => {
  let root: string;
  const targets: Target[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kloop-fuzz-'));
    targets.push(...(await makeTargets(root, SCALE)));
  });

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('the unmodified files load', async () => {
    for (const t of targets) {
      const r = await runVariant({ index: -1 - targets.indexOf(t), target: t, kind: 'none', desc: 'unmodified', files: t.base, expect: 'any' }, root, root);
      expect(r.outcome, `${t.name}: ${r.detail}`).toBe('loaded');
    }
  });

  it(`every corrupted variant ends in a clear error or a legitimate load (seed ${SEED})`, async () => {
    const results: Result[] = [];
    const t0 = performance.now();
    const rss0 = process.memoryUsage().rss;
    let peakRss = rss0;
    for (const v of variants(targets, SEED)) {
      const r = await runVariant(v, root, root);
      results.push(r);
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      if (VERBOSE && results.length % 100 === 0) {
        const m = process.memoryUsage();
        console.log(`${results.length} variants: rss +${((m.rss - rss0) / 2 ** 20).toFixed(0)} MiB, heap ${(m.heapUsed / 2 ** 20).toFixed(0)} MiB, buffers ${(m.arrayBuffers / 2 ** 20).toFixed(0)} MiB`);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;

    // Per-target and per-kind summary.
    const rows = new Map<string, Record<string, number>>();
    for (const r of results) {
      const key = `${r.v.target.name} / ${r.v.kind}`;
      const row = rows.get(key) ?? {};
      row[r.outcome] = (row[r.outcome] ?? 0) + 1;
      rows.set(key, row);
    }
    const slowest = results.reduce((a, b) => (b.cpuMs > a.cpuMs ? b : a));
    const biggest = results.reduce((a, b) => (b.memDelta > a.memDelta ? b : a));
    const lines = [
      `loader fuzz (seed ${SEED}): ${results.length} variants in ${seconds.toFixed(1)} s`,
      `  clear errors ${count('clear-error')}, loaded ${count('loaded')}, crashes ${count('crash')}, hangs ${count('hang')}, ` +
        `unclear errors ${count('unclear-error')}, bad loads ${count('bad-load')}, over-allocations ${count('memory')}`,
      `  slowest variant ${slowest.cpuMs.toFixed(0)} ms CPU, ${slowest.ms.toFixed(0)} ms wall (${slowest.v.target.name} / ${slowest.v.kind}); ` +
        `largest memory step ${(biggest.memDelta / 2 ** 20).toFixed(1)} MiB; peak RSS growth ${((peakRss - rss0) / 2 ** 20).toFixed(0)} MiB`,
      ...[...rows].map(([k, row]) => `  ${k}: ${Object.entries(row).map(([o, c]) => `${o} ${c}`).join(', ')}`),
    ];
    console.log(lines.join('\n'));

    const failed = results.filter((r) => FAILURES.includes(r.outcome));
    for (const r of failed.slice(0, 20)) {
      console.log(`FAIL #${r.v.index} ${r.v.target.name} / ${r.v.kind} (${r.v.desc}): ${r.outcome}: ${r.detail}`);
    }
    expect(results.length).toBeGreaterThanOrEqual(Math.min(1000, Math.round(1000 * SCALE)));
    expect(count('crash'), 'crashes').toBe(0);
    expect(count('hang'), 'hangs').toBe(0);
    expect(count('memory'), 'over-allocations').toBe(0);
    expect(count('unclear-error'), 'unclear errors').toBe(0);
    expect(count('bad-load'), 'corrupt files accepted').toBe(0);
    expect(peakRss - rss0, 'peak RSS growth over the run').toBeLessThan(MEM_LIMIT);
  }, 300_000);
});
