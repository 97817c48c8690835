/**
 * Text generation on top of any executor: encode the prompt, prefill it, then decode tokens in
 * chunks (K per dispatch for the looped mode), streaming each token's text as it arrives.
 * Used by the CLI and by the browser API alike.
 */
import { KloopError, OptionError } from '../errors.ts';
import type { LoadedModel } from '../loader/types.ts';
import type { Executor } from './executor.ts';
import { type SamplingOptions, validateSampling } from './sampler.ts';
import { type Drafter, MAX_SPECULATE, type SpeculationStats, speculateRound } from './speculate.ts';

export interface GenerateOptions {
  /** Text prompt (encoded with BOS), or `promptTokens` instead. */
  prompt?: string;
  promptTokens?: number[];
  maxTokens: number;
  sampling: SamplingOptions;
  /** Keep going past EOS/BOS. */
  ignoreEos?: boolean;
  /** Tokens decoded per executor call (the looped mode's K; 1 otherwise). */
  chunk?: number;
  /** Draft tokens per round of speculative decoding (speculate.ts); 0 = off. */
  speculate?: number;
  /** Where drafts come from (default: prompt lookup). */
  drafter?: Drafter;
}

export interface GeneratedToken {
  id: number;
  /** Text this token adds to the stream. */
  text: string;
  /** Position it will be fed at. */
  pos: number;
}

export interface GenerationResult {
  promptTokens: number[];
  tokens: number[];
  text: string;
  /** Seconds spent decoding the generated tokens (after the prompt was prefilled). */
  decodeSeconds: number;
  /** Seconds from the start of the prefill (kernels built) to the first generated token. */
  prefillSeconds: number;
  /** Dispatches issued for the prompt and the first generated token. */
  prefillDispatches: number;
  /** Speculative decoding's counters (when on). */
  speculation?: SpeculationStats;
  stoppedAt: StopReason;
}

/** Why a generation ended: EOS/BOS, the token budget, the end of the context, or the consumer stopped reading. */
export type StopReason = 'eos' | 'max-tokens' | 'context' | 'stopped';

/** Ids that end a generation: EOS, and BOS (llama2.c models emit it between stories). */
export function stopIds(model: LoadedModel): Set<number> {
  const c = model.config;
  return new Set([c.eosId, c.bosId, ...(c.eosIds ?? [])].filter((x) => x >= 0));
}

/**
 * Streams generated tokens. The returned iterator's `result()` (after it finishes) gives the
 * totals. Stops at EOS/BOS unless ignoreEos, at maxTokens, or at the end of the context.
 */
export function createGenerator(model: LoadedModel, executor: Executor, o: GenerateOptions, context = model.config.seqLen) {
  validateSampling(o.sampling);
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) throw new OptionError('maxTokens', `must be an integer >= 0 (got ${o.maxTokens})`);
  const promptTokens = o.promptTokens ?? model.tokenizer.encode(o.prompt ?? '');
  if (promptTokens.length === 0) throw new KloopError('prompt: no tokens');
  if (promptTokens.length >= context) {
    throw new KloopError(`prompt: ${promptTokens.length} tokens do not fit the context of ${context} (one position is needed to generate)`);
  }
  const spec = o.speculate ?? 0;
  if (!Number.isInteger(spec) || spec < 0 || spec > MAX_SPECULATE) {
    throw new OptionError('speculate', `must be an integer in [0, ${MAX_SPECULATE}] (got ${o.speculate})`);
  }
  const speculation: SpeculationStats | undefined = spec > 0 ? { draftTokens: 0, acceptedTokens: 0, rounds: 0 } : undefined;
  const stops = stopIds(model);
  const chunk = Math.max(1, o.chunk ?? 1);
  const tokens: number[] = [];
  let text = '';
  let prefillSeconds = 0;
  let prefillDispatches = 0;
  let decodeSeconds = 0;
  let stoppedAt: GenerationResult['stoppedAt'] = 'max-tokens';
  const tokenizer = model.tokenizer;

  async function* run(): AsyncGenerator<GeneratedToken> {
    if (o.maxTokens === 0) return;
    let ended = false;
    const t0 = performance.now();
    try {
      yield* steps();
      ended = true;
    } finally {
      // The consumer stopped reading (break, return, an exception in its loop body).
      if (!ended) {
        stoppedAt = 'stopped';
        decodeSeconds = (performance.now() - t0 - prefillSeconds * 1000) / 1000;
      }
    }
  }

  async function* steps(): AsyncGenerator<GeneratedToken> {
    const budget = Math.min(o.maxTokens, context - promptTokens.length);
    const P = promptTokens.length;
    // An empty batched forward builds the executor and its kernels before the clock starts.
    await executor.forwardMany?.([], 0, 'none');
    const d0 = executor.stats.dispatches;
    let t0 = performance.now();
    // Prefill: the prompt but its last token through the batched forward (T tokens per weight
    // read, the KV cache filled), then the last token decoded, which samples the first new one.
    let produced: number[];
    if (executor.forwardMany && P > 1) {
      await executor.forwardMany(promptTokens.slice(0, -1), 0, 'none');
      produced = await executor.decode([promptTokens[P - 1]!], P - 1, 1, o.sampling);
    } else {
      produced = await executor.decode(promptTokens, 0, P, o.sampling);
    }
    prefillSeconds = (performance.now() - t0) / 1000;
    prefillDispatches = executor.stats.dispatches - d0;
    let prev = promptTokens[promptTokens.length - 1];
    t0 = performance.now();
    for (;;) {
      for (const id of produced) {
        if (tokens.length >= budget) break;
        if (!o.ignoreEos && stops.has(id)) {
          stoppedAt = 'eos';
          decodeSeconds = (performance.now() - t0) / 1000;
          return;
        }
        const piece = tokenizer.vocabSize > 0 ? tokenizer.decodeStep(prev, id) : '';
        tokens.push(id);
        text += piece;
        prev = id;
        yield { id, text: piece, pos: promptTokens.length + tokens.length - 1 };
      }
      if (tokens.length >= budget) {
        stoppedAt = tokens.length >= o.maxTokens ? 'max-tokens' : 'context';
        break;
      }
      const pos = promptTokens.length + tokens.length - 1;
      const n = Math.min(chunk, budget - tokens.length);
      produced = speculation
        ? await speculateRound(executor, [...promptTokens, ...tokens], budget - tokens.length, o.sampling, spec, speculation, context, chunk, o.drafter)
        : await executor.decode([prev], pos, n, o.sampling);
    }
    if (tokenizer.flush) text += tokenizer.flush();
    decodeSeconds = (performance.now() - t0) / 1000;
  }

  const it = run();
  return Object.assign(it, {
    promptTokens,
    result(): GenerationResult {
      return { promptTokens, tokens, text, decodeSeconds, prefillSeconds, prefillDispatches, speculation, stoppedAt };
    },
  });
}
