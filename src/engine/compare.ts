/**
 * The per-op / per-layer / looped comparison of the browser's bench panel (and any other front
 * end): each mode's kernels built, warmed up, then timed with Session.timeDecode; the median
 * of the repeats counts, as in `kloop bench`.
 */
import { KloopError } from '../errors.ts';
import type { LoadedModel } from '../loader/types.ts';
import type { Mode } from './interface.ts';
import { DEFAULTS, type DeviceSource, Session, median } from './session.ts';
import { sharedDevice } from './stream.ts';

export type GpuMode = Exclude<Mode, 'reference'>;
export const GPU_MODES: readonly GpuMode[] = ['per-op', 'per-layer', 'looped'];

export interface BenchOptions {
  modes?: readonly GpuMode[];
  /** Tokens decoded per timed run, from BOS, greedily (default 64). */
  tokens?: number;
  /** Untimed tokens decoded first, after the kernels are built (default 4). */
  warmup?: number;
  /** Timed runs per mode; the median counts (default 3). */
  repeats?: number;
  /** Tokens per looped dispatch (default DEFAULTS.tokensPerDispatch). */
  tokensPerDispatch?: number;
  /** Called before each phase of a mode and when it is done. */
  onProgress?: (p: { mode: GpuMode; phase: 'build' | 'warmup' | 'run' | 'done'; result?: BenchResult }) => void;
  /** Checked between runs; stops the comparison with a KloopError. */
  signal?: AbortSignal;
}

export interface BenchResult {
  mode: GpuMode;
  tokensPerDispatch: number;
  tokens: number[];
  /** Median over the repeats. */
  tokensPerSecond: number;
  decodeSeconds: number;
  /** Tokens/s of the slowest and the fastest repeat. */
  spread: { min: number; max: number };
  /** Seconds to build the executor: WGSL compilation, pipelines, occupancy discovery, upload. */
  buildSeconds: number;
  dispatchesPerToken: number;
  fallbacks: number;
  workgroups: number;
}

/** Times each mode on `session`; every mode must give the same tokens (`agree`). */
export async function compareModes(session: Session, opts: BenchOptions = {}): Promise<{ results: BenchResult[]; agree: boolean }> {
  const modes = opts.modes ?? GPU_MODES;
  const tokens = opts.tokens ?? 64;
  const warmup = opts.warmup ?? 4;
  const repeats = Math.max(1, opts.repeats ?? 3);
  const stopped = () => {
    if (opts.signal?.aborted) throw new KloopError('benchmark stopped');
  };
  const results: BenchResult[] = [];
  for (const mode of modes) {
    stopped();
    const choice = { mode, tokensPerDispatch: mode === 'looped' ? (opts.tokensPerDispatch ?? DEFAULTS.tokensPerDispatch) : 1 };
    opts.onProgress?.({ mode, phase: 'build' });
    const { buildSeconds } = await session.executorWithBuildTime(choice);
    if (warmup > 0) {
      opts.onProgress?.({ mode, phase: 'warmup' });
      await session.timeDecode({ ...choice, tokens: Math.min(warmup, tokens) });
    }
    opts.onProgress?.({ mode, phase: 'run' });
    const runs = [];
    for (let i = 0; i < repeats; i++) {
      stopped();
      runs.push(await session.timeDecode({ ...choice, tokens }));
    }
    const rates = runs.map((r) => r.tokensPerSecond);
    const last = runs[runs.length - 1]!;
    const result: BenchResult = {
      mode,
      tokensPerDispatch: choice.tokensPerDispatch,
      tokens: last.tokens,
      tokensPerSecond: median(rates),
      decodeSeconds: median(runs.map((r) => r.seconds)),
      spread: { min: Math.min(...rates), max: Math.max(...rates) },
      buildSeconds,
      dispatchesPerToken: last.dispatchesPerToken,
      fallbacks: runs.reduce((a, r) => a + r.fallbacks, 0),
      workgroups: last.workgroups,
    };
    results.push(result);
    opts.onProgress?.({ mode, phase: 'done', result });
  }
  const first = results[0];
  const agree = results.every((r) => r.tokens.length === first!.tokens.length && r.tokens.every((t, i) => t === first!.tokens[i]));
  return { results, agree };
}

/** compareModes on a session of its own (on the shared device unless one is given), freed at the end. */
export async function benchmark(
  model: LoadedModel,
  opts: BenchOptions & { device?: DeviceSource } = {},
): Promise<{ results: BenchResult[]; agree: boolean }> {
  const session = new Session(model, { device: opts.device ?? sharedDevice });
  try {
    return await compareModes(session, opts);
  } finally {
    await session.dispose();
  }
}
