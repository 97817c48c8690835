/**
 * The engine API shared by the browser bundle and the Node entry: devices, executors, a token
 * stream that can build its own executor, and the per-op / per-layer / looped comparison.
 * Imports nothing Node-only.
 */
import { KloopError } from '../errors.ts';
import { type AcquiredDevice, acquireDevice as engineAcquireDevice } from '../engine/device.ts';
import { type Executor, type Mode, createExecutor } from '../engine/executor.ts';
import {
  type GenerateOptions,
  type GeneratedToken,
  type GenerationResult,
  createGenerator as engineCreateGenerator,
} from '../engine/generate.ts';
import { GREEDY, type SamplingOptions } from '../engine/sampler.ts';
import type { LoadedModel } from '../loader/types.ts';

export type GpuMode = Exclude<Mode, 'reference'>;
export const GPU_MODES: readonly GpuMode[] = ['per-op', 'per-layer', 'looped'];
/** Tokens per looped dispatch when none is given. */
export const DEFAULT_TOKENS_PER_DISPATCH = 8;

const CPU_ADAPTER = /swiftshader|llvmpipe|lavapipe/i;

/**
 * Opens a WebGPU device (the page's navigator.gpu in a browser, Dawn in Node). Browsers often
 * leave adapter.info.description empty; the adapter then also counts as a CPU implementation
 * when its architecture or vendor names one (Chromium reports SwiftShader as architecture
 * "swiftshader"), so the CPU kernel tuning applies.
 */
export async function acquireDevice(want?: string, log?: (s: string) => void): Promise<AcquiredDevice> {
  const d = await engineAcquireDevice(want, log);
  if (!d.cpu && CPU_ADAPTER.test(`${d.info.architecture} ${d.info.vendor} ${d.info.description}`)) d.cpu = true;
  return d;
}

let shared: Promise<AcquiredDevice> | undefined;
/**
 * One device for the page (or process), opened on first use and reopened after it is lost.
 * Executors share it: creating one per generation would recompile nothing, but costs a device.
 */
export function sharedDevice(): Promise<AcquiredDevice> {
  if (!shared) {
    const p = acquireDevice();
    shared = p;
    p.then(
      (d) => d.device.lost.then(() => {
        if (shared === p) shared = undefined;
      }),
      () => {
        if (shared === p) shared = undefined;
      },
    );
  }
  return shared;
}

export interface StreamOptions extends Partial<Omit<GenerateOptions, 'sampling'>> {
  /** Sampling (default greedy); missing fields take the greedy values. */
  sampling?: Partial<SamplingOptions>;
  /** Executor mode when no executor is given (default 'looped'). */
  mode?: Mode;
  /** Tokens per looped dispatch (K); default 8 for the looped mode. */
  tokensPerDispatch?: number;
  /** The device to build the executor on (default: sharedDevice()). */
  device?: AcquiredDevice | (() => Promise<AcquiredDevice>);
  /** An executor to reuse (it is not destroyed at the end); else one is built and destroyed. */
  executor?: Executor;
}

export type TokenStream = AsyncGenerator<GeneratedToken, void, undefined> & {
  promptTokens: number[];
  /** Totals, once the stream has ended. */
  result(): GenerationResult;
  /** The executor, once the first token has been asked for. */
  readonly executor: Executor | undefined;
};

const isExecutor = (x: unknown): x is Executor =>
  typeof x === 'object' && x !== null && typeof (x as Executor).decode === 'function' && typeof (x as Executor).forward === 'function';

/**
 * Streams generated tokens ({ id, text, pos }) as an async iterator; `result()` gives the totals.
 *
 * - `createGenerator(model, { prompt, mode, maxTokens, ... })` builds the executor on first use
 *   (on the shared device) and destroys it at the end;
 * - `createGenerator(model, executor, options)` is the engine's form, on an executor you own.
 */
export function createGenerator(model: LoadedModel, options?: StreamOptions): TokenStream;
export function createGenerator(model: LoadedModel, executor: Executor, options: GenerateOptions, context?: number): TokenStream;
export function createGenerator(
  model: LoadedModel,
  second?: StreamOptions | Executor,
  third?: GenerateOptions,
  context?: number,
): TokenStream {
  if (isExecutor(second)) {
    const g = engineCreateGenerator(model, second, third!, context);
    return Object.assign(g, { executor: second });
  }
  const o: StreamOptions = second ?? {};
  const mode = o.mode ?? (o.executor ? o.executor.mode : 'looped');
  const k = mode === 'looped' ? (o.tokensPerDispatch ?? DEFAULT_TOKENS_PER_DISPATCH) : 1;
  const device = o.device;
  const getDevice = (): Promise<AcquiredDevice> =>
    device === undefined ? sharedDevice() : typeof device === 'function' ? device() : Promise.resolve(device);

  let real: Executor | undefined = o.executor;
  let pending: Promise<Executor> | undefined;
  const own = !o.executor;
  const ensure = (): Promise<Executor> => {
    if (real) return Promise.resolve(real);
    pending ??= createExecutor(model, mode, getDevice, { tokensPerDispatch: k }).then((e) => (real = e));
    return pending;
  };
  // Builds the real executor on the first call, so that option errors still throw at once.
  const lazy: Executor = {
    mode,
    get stats() {
      return real ? real.stats : { steps: 0, dispatches: 0, submits: 0, fallbacks: 0, workgroups: 0 };
    },
    forward: async (token, pos) => (await ensure()).forward(token, pos),
    decode: async (inputs, pos, steps, sampling) => (await ensure()).decode(inputs, pos, steps, sampling),
    destroy: () => real?.destroy(),
  };
  const g = engineCreateGenerator(
    model,
    lazy,
    {
      prompt: o.prompt,
      promptTokens: o.promptTokens,
      maxTokens: o.maxTokens ?? 256,
      sampling: { ...GREEDY, ...o.sampling },
      ignoreEos: o.ignoreEos,
      chunk: o.chunk ?? k,
    },
    context,
  );
  async function* owned(): AsyncGenerator<GeneratedToken, void, undefined> {
    try {
      yield* g;
    } finally {
      if (own) real?.destroy();
    }
  }
  const stream = Object.assign(owned(), { promptTokens: g.promptTokens, result: () => g.result() });
  return Object.defineProperty(stream, 'executor', { get: () => real, enumerable: true }) as TokenStream;
}

export interface BenchOptions {
  modes?: readonly GpuMode[];
  /** Tokens timed per mode (default 64). */
  tokens?: number;
  /** Untimed tokens decoded first, after the kernels are built (default 4). */
  warmup?: number;
  /** Timed runs per mode; the fastest counts (default 3). */
  repeats?: number;
  prompt?: string;
  /** Tokens per looped dispatch (default 8). */
  tokensPerDispatch?: number;
  device?: AcquiredDevice | (() => Promise<AcquiredDevice>);
  /** Called before each mode starts and after it ends. */
  onProgress?: (p: { mode: GpuMode; phase: 'build' | 'warmup' | 'run' | 'done'; result?: BenchResult }) => void;
  /** Checked between modes and tokens; stops the run with a KloopError. */
  signal?: AbortSignal;
}

export interface BenchResult {
  mode: GpuMode;
  tokensPerDispatch: number;
  tokens: number[];
  /** Decode rate from the first generated token to the last (greedy, EOS ignored), as kloop generate reports it. */
  tokensPerSecond: number;
  decodeSeconds: number;
  /** Seconds to build the executor: WGSL compilation, pipelines, occupancy discovery, upload. */
  buildSeconds: number;
  dispatchesPerToken: number;
  fallbacks: number;
  workgroups: number;
}

/**
 * Runs each mode on the same prompt, greedily, and times the decode (the fastest of `repeats`
 * runs, after a warm-up). Every mode must produce the same tokens; `agree` says whether they did.
 */
export async function benchmark(model: LoadedModel, opts: BenchOptions = {}): Promise<{ results: BenchResult[]; agree: boolean }> {
  const modes = opts.modes ?? GPU_MODES;
  const n = opts.tokens ?? 64;
  const warmup = opts.warmup ?? 4;
  const kLooped = opts.tokensPerDispatch ?? DEFAULT_TOKENS_PER_DISPATCH;
  const device = opts.device ?? sharedDevice;
  const getDevice = (): Promise<AcquiredDevice> => (typeof device === 'function' ? device() : Promise.resolve(device));
  const results: BenchResult[] = [];
  const aborted = () => {
    if (opts.signal?.aborted) throw new KloopError('benchmark stopped');
  };
  for (const mode of modes) {
    aborted();
    const k = mode === 'looped' ? kLooped : 1;
    opts.onProgress?.({ mode, phase: 'build' });
    const t0 = performance.now();
    const ex = await createExecutor(model, mode, getDevice, { tokensPerDispatch: k });
    try {
      const buildSeconds = (performance.now() - t0) / 1000;
      const run = async (count: number) => {
        const g = createGenerator(model, ex, { prompt: opts.prompt ?? '', maxTokens: count, sampling: GREEDY, ignoreEos: true, chunk: k });
        for await (const _ of g) aborted();
        return g.result();
      };
      if (warmup > 0) {
        opts.onProgress?.({ mode, phase: 'warmup' });
        await run(warmup);
      }
      opts.onProgress?.({ mode, phase: 'run' });
      const before = { ...ex.stats };
      let r = await run(n);
      for (let i = 1; i < Math.max(1, opts.repeats ?? 3); i++) {
        const again = await run(n);
        if (again.decodeSeconds < r.decodeSeconds) r = again;
      }
      const steps = ex.stats.steps - before.steps;
      const result: BenchResult = {
        mode,
        tokensPerDispatch: k,
        tokens: r.tokens,
        // The first token comes out of the prompt's prefill; the decode rate counts the rest.
        tokensPerSecond: r.tokens.length > 1 && r.decodeSeconds > 0 ? (r.tokens.length - 1) / r.decodeSeconds : 0,
        decodeSeconds: r.decodeSeconds,
        buildSeconds,
        dispatchesPerToken: steps > 0 ? (ex.stats.dispatches - before.dispatches) / steps : 0,
        fallbacks: ex.stats.fallbacks,
        workgroups: ex.stats.workgroups,
      };
      results.push(result);
      opts.onProgress?.({ mode, phase: 'done', result });
    } finally {
      ex.destroy();
    }
  }
  const agree = results.every((r) => r.tokens.length === results[0]!.tokens.length && r.tokens.every((t, i) => t === results[0]!.tokens[i]));
  return { results, agree };
}
