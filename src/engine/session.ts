/**
 * The front door: a Session owns one model, the device it runs on and the executors built for
 * it, and holds every default in ONE place. The CLI, the library API (Node and browser), the
 * benchmarks and the demo all go through it.
 *
 *   const s = openSession(model, { adapter: 'lavapipe' });      // nothing is opened yet
 *   const g = s.generate({ prompt: 'Once upon a time', maxTokens: 64 });   // checks at once
 *   for await (const t of g) process.stdout.write(t.text);      // device + kernels on first use
 *   g.result().stats.tokensPerSecond;
 *   await s.timeDecode({ mode: 'per-layer', tokens: 64 });      // one timed decode (benchmarks)
 *   s.dispose();                                                // executors, then the device
 *
 * Options are named as here (`tokensPerDispatch`, `context`); a bad value throws an OptionError
 * naming the option, which the CLI maps to its flag.
 */
import { OptionError } from '../errors.ts';
import type { LoadedModel, ModelConfig } from '../loader/types.ts';
import { type AcquiredDevice, type AdapterDescription, acquireDevice } from './device.ts';
import { checkSameVocabulary, lazyModelDrafter } from './draft-model.ts';
import { createExecutor } from './executor.ts';
import { type GenerationResult, type GeneratedToken, createGenerator as generateWith } from './generate.ts';
import type { GpuOptions } from './gpu-executor.ts';
import { type Executor, type ExecutorStats, MODES, type Mode } from './interface.ts';
import { MAX_TOKENS_PER_DISPATCH } from './layout.ts';
export { median, parameterCount } from './counts.ts';
import { GREEDY, type SamplingOptions } from './sampler.ts';

/** Every default of the engine's front ends. */
export const DEFAULTS = {
  mode: 'looped' as Mode,
  /** Tokens per looped dispatch (K); other modes decode one token per dispatch. */
  tokensPerDispatch: 16,
  maxTokens: 256,
  /** Largest KV cache allocated by default (positions): min(model's context, this). */
  maxContext: 2048,
} as const;

/** What the reference mode reports as its adapter: no GPU is opened. */
export const REFERENCE_ADAPTER: AdapterDescription = { vendor: 'cpu', architecture: 'reference', description: 'CPU reference (float64)' };

export type DeviceSource = AcquiredDevice | (() => Promise<AcquiredDevice>);

/** Executor knobs for tests and experiments (workgroups, spin bounds, kernel tuning). */
export type ExecutorTuning = Omit<GpuOptions, 'mode' | 'tokensPerDispatch' | 'context' | 'log'>;

export interface SessionOptions {
  /** WebGPU adapter whose name contains this (Node; see `kloop devices`). Default: the best found. */
  adapter?: string;
  /** Run on this device (the session does not destroy it) or on what this function opens. */
  device?: DeviceSource;
  /** KV-cache positions. Default: min(model's context, DEFAULTS.maxContext). */
  context?: number;
  /** Where messages go (adapter fallback, barrier timeouts). Default: console.error. */
  log?: (s: string) => void;
  tuning?: ExecutorTuning;
}

export interface ExecutorChoice {
  /** Default DEFAULTS.mode. */
  mode?: Mode;
  /** Looped mode only: tokens per dispatch. Default DEFAULTS.tokensPerDispatch (1 in other modes). */
  tokensPerDispatch?: number;
}

export interface GenerateRequest extends ExecutorChoice {
  /** Text to continue (encoded with BOS), or `promptTokens` instead. Default: BOS alone. */
  prompt?: string;
  promptTokens?: number[];
  /** Default DEFAULTS.maxTokens; the context also ends a generation. */
  maxTokens?: number;
  /** Missing fields take the greedy values (GREEDY). */
  sampling?: Partial<SamplingOptions>;
  /** Keep going past EOS/BOS. */
  ignoreEos?: boolean;
  /** Speculative decoding: draft tokens verified per batched pass; 0 = off. */
  speculate?: number;
  /** Drafts from this smaller model (same vocabulary, same device) instead of prompt lookup. */
  draftModel?: LoadedModel;
}

/** Rates of the decode phase: from the first generated token (out of the prefill) to the last. */
export interface DecodeStats {
  tokensPerSecond: number;
  msPerToken: number;
  dispatchesPerToken: number;
  submitsPerToken: number;
  /** Steps re-run per-op after a grid-barrier timeout. */
  fallbacks: number;
  /** Workgroups of the fused kernels (0 for per-op and the reference). */
  workgroups: number;
  tokensPerDispatch: number;
  /** Bytes of the executor's device buffers (weights once, in their packed encodings; KV cache; activations). 0 for the reference. */
  deviceBytes: number;
  /** Prompt tokens per second of the prefill (batched forward, then the first new token). */
  prefillTokensPerSecond: number;
  /** Milliseconds from the start of the prefill (kernels built) to the first generated token. */
  timeToFirstTokenMs: number;
  /** Dispatches of the prefill (the prompt's chunks and the first token's step). */
  prefillDispatches: number;
  /** With speculation: draft tokens verified, accepted, and accepted / drafted. */
  draftTokens?: number;
  acceptedTokens?: number;
  acceptanceRate?: number;
}

export interface SessionResult extends GenerationResult {
  mode: Mode;
  stats: DecodeStats;
}

export type TokenStream = AsyncGenerator<GeneratedToken, void, undefined> & {
  promptTokens: number[];
  /** Totals, once the stream has ended (or was stopped). */
  result(): SessionResult;
  /** The executor, once the first token has been asked for. */
  readonly executor: Executor | undefined;
};

export interface TimedDecode {
  mode: Mode;
  tokensPerDispatch: number;
  /** The tokens sampled (greedy, EOS ignored). */
  tokens: number[];
  seconds: number;
  tokensPerSecond: number;
  dispatchesPerToken: number;
  submitsPerToken: number;
  fallbacks: number;
  workgroups: number;
}

export interface TimedPrefill {
  mode: Mode;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  dispatches: number;
  submits: number;
}

const ZERO_STATS: ExecutorStats = { steps: 0, dispatches: 0, submits: 0, fallbacks: 0, workgroups: 0 };

/** The mode and K a choice resolves to, with the defaults applied and checked. */
export function resolveChoice(c: ExecutorChoice = {}): { mode: Mode; tokensPerDispatch: number } {
  const mode = c.mode ?? DEFAULTS.mode;
  if (!(MODES as readonly string[]).includes(mode)) throw new OptionError('mode', `unknown mode "${mode}" (one of ${MODES.join(', ')})`);
  const k = c.tokensPerDispatch ?? (mode === 'looped' ? DEFAULTS.tokensPerDispatch : 1);
  if (!Number.isInteger(k) || k < 1 || k > MAX_TOKENS_PER_DISPATCH) {
    throw new OptionError('tokensPerDispatch', `must be an integer in [1, ${MAX_TOKENS_PER_DISPATCH}] (got ${k})`);
  }
  if (k > 1 && mode !== 'looped') {
    throw new OptionError('tokensPerDispatch', `only the looped mode decodes several tokens per dispatch (mode is ${mode})`);
  }
  return { mode, tokensPerDispatch: k };
}

/**
 * Has `session` forget `dev` when it is lost. The session is held weakly, from outside its
 * methods' scopes: a shared device outlives the sessions on it, and its lost promise (which keeps
 * this callback) must not keep a disposed session and its model in memory.
 */
function forgetWhenLost(session: Session, dev: AcquiredDevice, opened: Promise<AcquiredDevice>): void {
  const ref = new WeakRef(session);
  void dev.device.lost.then(() => ref.deref()?.forgetLost(opened));
}

export class Session {
  readonly model: LoadedModel;
  /** KV-cache positions of every executor of this session. */
  readonly context: number;
  private readonly opts: SessionOptions;
  private opened?: Promise<AcquiredDevice>;
  private acquired?: AcquiredDevice;
  private readonly executors = new Map<string, Promise<{ executor: Executor; buildSeconds: number }>>();
  private readonly drafts = new Map<LoadedModel, Session>();
  private disposed = false;

  constructor(model: LoadedModel, opts: SessionOptions = {}) {
    this.model = model;
    this.opts = opts;
    const seqLen = model.config.seqLen;
    const context = opts.context ?? Math.min(seqLen, DEFAULTS.maxContext);
    if (!Number.isInteger(context) || context < 1 || context > seqLen) {
      throw new OptionError('context', `must be an integer in [1, ${seqLen}] for ${model.name} (got ${context})`);
    }
    this.context = context;
  }

  private get log(): (s: string) => void {
    return this.opts.log ?? ((s) => console.error(s));
  }

  /**
   * The device, opened on first use. When it is lost (driver reset, a destroyed device) and the
   * session opens its devices itself or through a function (sharedDevice, which reopens after a
   * loss), the device and the executors built on it are forgotten and the next use opens a new
   * one; a device object given as such stays, lost.
   */
  device(): Promise<AcquiredDevice> {
    if (this.disposed) throw new OptionError('session', 'already disposed');
    if (!this.opened) {
      const d = this.opts.device;
      const p = d === undefined ? acquireDevice(this.opts.adapter, this.log) : typeof d === 'function' ? d() : Promise.resolve(d);
      const opened = p.then((dev) => {
        this.acquired = dev;
        if (typeof d !== 'object') forgetWhenLost(this, dev, opened);
        return dev;
      });
      this.opened = opened;
      opened.catch(() => {
        if (this.opened === opened) this.opened = undefined;
      });
    }
    return this.opened;
  }

  /** Forgets the lost device `opened` and the executors on it (they are dead with it). */
  forgetLost(opened: Promise<AcquiredDevice>): void {
    if (this.disposed || this.opened !== opened) return;
    this.opened = undefined;
    this.acquired = undefined;
    const dead = [...this.executors.values()];
    this.executors.clear();
    for (const p of dead) void p.then((e) => e.executor.destroy(), () => undefined);
  }

  /** The adapter executors run on: REFERENCE_ADAPTER until a device is opened. */
  get adapter(): { info: AdapterDescription; name: string } {
    const d = this.acquired;
    return d ? { info: d.info, name: d.name } : { info: REFERENCE_ADAPTER, name: REFERENCE_ADAPTER.description };
  }

  /** The executor of a mode (and K), built on first use and kept until dispose(). */
  executorWithBuildTime(choice: ExecutorChoice = {}): Promise<{ executor: Executor; buildSeconds: number }> {
    const { mode, tokensPerDispatch } = resolveChoice(choice);
    const key = `${mode}|${tokensPerDispatch}`;
    let p = this.executors.get(key);
    if (!p) {
      const t0 = performance.now();
      p = createExecutor(this.model, mode, () => this.device(), {
        ...this.opts.tuning,
        tokensPerDispatch,
        context: this.context,
        log: this.log,
      }).then((executor) => ({ executor, buildSeconds: (performance.now() - t0) / 1000 }));
      this.executors.set(key, p);
      const entry = p;
      p.catch(() => {
        if (this.executors.get(key) === entry) this.executors.delete(key);
      });
    }
    return p;
  }

  /** Whether the executor of this choice was asked for already (built or being built). */
  built(choice: ExecutorChoice = {}): boolean {
    const { mode, tokensPerDispatch } = resolveChoice(choice);
    return this.executors.has(`${mode}|${tokensPerDispatch}`);
  }

  async executor(choice: ExecutorChoice = {}): Promise<Executor> {
    return (await this.executorWithBuildTime(choice)).executor;
  }

  /**
   * Streams generated tokens ({ id, text, pos }). Options and the prompt are checked at once;
   * the device and the kernels are built when the first token is asked for.
   */
  generate(req: GenerateRequest = {}): TokenStream {
    const { mode, tokensPerDispatch: k } = resolveChoice(req);
    const sampling: SamplingOptions = { ...GREEDY, ...req.sampling };
    const draft = req.draftModel && this.draftSession(req.draftModel);
    const drafter = draft && lazyModelDrafter(() => draft.executor({ mode, tokensPerDispatch: k }), draft.context);
    const speculate = req.speculate ?? (drafter ? 4 : 0);
    let real: Executor | undefined;
    // Counters of a reused executor start where its last run left them.
    let atStart: ExecutorStats | undefined;
    const ensure = async (): Promise<Executor> => {
      if (!real) {
        const e = await this.executor({ mode, tokensPerDispatch: k });
        // With speculation, the kernels its rounds use (the batched forward that verifies, the
        // draft model's executor and its batched forward) are built with the model's, before the
        // first token, so that decoding's figures do not carry their compilation (stories260K on
        // lavapipe, a 128-token draft-model generation: 232 tokens/s cold, 1221-1295 warm).
        if (speculate > 0) {
          await e.forwardMany?.([], 0, 'none');
          if (draft) await (await draft.executor({ mode, tokensPerDispatch: k })).forwardMany?.([], 0, 'none');
        }
        atStart ??= { ...e.stats };
        real = e;
      }
      return real;
    };
    const lazy: Executor = {
      mode,
      get stats() {
        return real ? real.stats : ZERO_STATS;
      },
      forward: async (token, pos) => (await ensure()).forward(token, pos),
      decode: async (inputs, pos, steps, s) => (await ensure()).decode(inputs, pos, steps, s),
      forwardMany: async (tokens, pos, want) => {
        const e = await ensure();
        if (e.forwardMany) return e.forwardMany(tokens, pos, want);
        throw new Error('forwardMany: not available');
      },
      destroy: () => undefined,
    };
    const g = generateWith(
      this.model,
      lazy,
      { prompt: req.prompt, promptTokens: req.promptTokens, maxTokens: req.maxTokens ?? DEFAULTS.maxTokens, sampling, ignoreEos: req.ignoreEos, chunk: k, speculate, drafter },
      this.context,
    );
    let atFirst: ExecutorStats | undefined;
    async function* counted(): AsyncGenerator<GeneratedToken, void, undefined> {
      for await (const t of g) {
        atFirst ??= { ...lazy.stats };
        yield t;
      }
    }
    const it = counted();
    const result = (): SessionResult => {
      const r = g.result();
      const end = lazy.stats;
      const decoded = r.tokens.length - 1;
      const start = atStart ?? ZERO_STATS;
      const perToken = (key: 'dispatches' | 'submits'): number => {
        if (decoded > 0 && atFirst) return (end[key] - atFirst[key]) / decoded;
        const steps = end.steps - start.steps;
        return steps > 0 ? (end[key] - start[key]) / steps : 0;
      };
      const tokensPerSecond = decoded > 0 && r.decodeSeconds > 0 ? decoded / r.decodeSeconds : 0;
      return {
        ...r,
        mode,
        stats: {
          tokensPerSecond,
          msPerToken: tokensPerSecond > 0 ? 1000 / tokensPerSecond : 0,
          dispatchesPerToken: perToken('dispatches'),
          submitsPerToken: perToken('submits'),
          fallbacks: end.fallbacks - start.fallbacks,
          workgroups: end.workgroups,
          tokensPerDispatch: k,
          deviceBytes: real && 'deviceBytes' in real ? (real.deviceBytes as number) : 0,
          prefillTokensPerSecond: r.prefillSeconds > 0 ? r.promptTokens.length / r.prefillSeconds : 0,
          timeToFirstTokenMs: r.prefillSeconds * 1000,
          prefillDispatches: r.prefillDispatches,
          ...(r.speculation && {
            draftTokens: r.speculation.draftTokens,
            acceptedTokens: r.speculation.acceptedTokens,
            acceptanceRate: r.speculation.draftTokens > 0 ? r.speculation.acceptedTokens / r.speculation.draftTokens : 0,
          }),
        },
      };
    };
    const stream = Object.assign(it, { promptTokens: g.promptTokens, result });
    return Object.defineProperty(stream, 'executor', { get: () => real, enumerable: true }) as TokenStream;
  }

  /**
   * One timed decode for benchmarks: `tokens` greedy steps from position 0 fed with BOS, the
   * sampled token fed back (on the device for looped:K, through the host otherwise). The
   * executor is built (and its kernels compiled) before the clock starts.
   */
  async timeDecode(o: ExecutorChoice & { tokens: number }): Promise<TimedDecode> {
    const { mode, tokensPerDispatch } = resolveChoice(o);
    if (!Number.isInteger(o.tokens) || o.tokens < 1 || o.tokens > this.context) {
      throw new OptionError('tokens', `must be an integer in [1, ${this.context}] (got ${o.tokens})`);
    }
    const ex = await this.executor({ mode, tokensPerDispatch });
    const c = this.model.config;
    const bos = c.bosId >= 0 && c.bosId < c.vocabSize ? c.bosId : 0;
    const before = { ...ex.stats };
    const t0 = performance.now();
    const tokens = await ex.decode([bos], 0, o.tokens, GREEDY);
    const seconds = (performance.now() - t0) / 1000;
    const s = ex.stats;
    return {
      mode,
      tokensPerDispatch,
      tokens,
      seconds,
      tokensPerSecond: o.tokens / seconds,
      dispatchesPerToken: (s.dispatches - before.dispatches) / o.tokens,
      submitsPerToken: (s.submits - before.submits) / o.tokens,
      fallbacks: s.fallbacks - before.fallbacks,
      workgroups: s.workgroups,
    };
  }

  /**
   * One timed prefill for benchmarks: a `tokens`-token prompt (BOS, then ids 2, 3, ...) through
   * the batched forward from position 0, the last token's logits read back. The executor and
   * its batched kernels are built before the clock starts.
   */
  async timePrefill(o: ExecutorChoice & { tokens: number }): Promise<TimedPrefill> {
    const { mode, tokensPerDispatch } = resolveChoice(o);
    if (!Number.isInteger(o.tokens) || o.tokens < 1 || o.tokens > this.context) {
      throw new OptionError('tokens', `must be an integer in [1, ${this.context}] (got ${o.tokens})`);
    }
    const ex = await this.executor({ mode, tokensPerDispatch });
    if (!ex.forwardMany) throw new OptionError('mode', `${mode} has no batched forward`);
    const c = this.model.config;
    const bos = c.bosId >= 0 && c.bosId < c.vocabSize ? c.bosId : 0;
    const prompt = Array.from({ length: o.tokens }, (_, i) => (i === 0 ? bos : 2 + ((i * 7) % (c.vocabSize - 2))));
    await ex.forwardMany([], 0, 'none');
    const before = { ...ex.stats };
    const t0 = performance.now();
    await ex.forwardMany(prompt, 0, 'last');
    const seconds = (performance.now() - t0) / 1000;
    return { mode, tokens: o.tokens, seconds, tokensPerSecond: o.tokens / seconds, dispatches: ex.stats.dispatches - before.dispatches, submits: ex.stats.submits - before.submits };
  }

  /** A session of its own on this device for draft model `draft` (checked to share the vocabulary). */
  private draftSession(draft: LoadedModel): Session {
    checkSameVocabulary(this.model, draft);
    let s = this.drafts.get(draft);
    if (!s) this.drafts.set(draft, (s = new Session(draft, { device: () => this.device(), context: Math.min(this.context, draft.config.seqLen), log: this.opts.log })));
    return s;
  }

  /** Frees every executor, then the device unless it was given. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const d of this.drafts.values()) await d.dispose();
    for (const p of this.executors.values()) {
      const e = await p.catch(() => undefined);
      e?.executor.destroy();
    }
    this.executors.clear();
    const own = this.opts.device === undefined;
    const d = this.acquired ?? (await this.opened?.catch(() => undefined));
    if (own) d?.device.destroy();
  }
}

/** Opens a session on `model`; nothing is opened on the device until it is needed. */
export function openSession(model: LoadedModel, opts: SessionOptions = {}): Session {
  return new Session(model, opts);
}
