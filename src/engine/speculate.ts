/**
 * Speculative decoding on the batched forward. Each round drafts up to N tokens, by prompt lookup
 * (the most recent earlier occurrence of the context's last n-gram, and the tokens that followed
 * it) or by a smaller draft model of the same vocabulary decoding greedily, then verifies them
 * in ONE batched pass: the last token and the draft are fed at their
 * positions (one looped dispatch when they fit a chunk), which returns the model's logits after
 * each. The accepted prefix, plus one token from the model, is emitted; the KV cache holds the
 * accepted positions, and the rejected ones are overwritten by the next round.
 *
 * Acceptance: greedy (temperature 0) accepts a draft token when it is the argmax, so the output
 * is exactly the non-speculative greedy output. Sampled, it is the speculative-sampling rule
 * (Leviathan et al. 2023; Chen et al. 2023) for a draft distribution q that puts all its mass on
 * the drafted token d: accept d with probability min(1, p(d) / q(d)) = p(d); otherwise draw from
 * the residual max(0, p - q), i.e. p without d, renormalised. The emitted token is then
 * distributed exactly as p (the sampler's distribution: temperature, top-k, top-p).
 */
import { KloopError } from '../errors.ts';
import type { Executor } from './interface.ts';
import { GREEDY, type SamplingOptions, argmax, drawFrom, nucleusWeights, pcgHash, uniformAt } from './sampler.ts';

/** Most draft tokens per round (--speculate). */
export const MAX_SPECULATE = 15;

/**
 * Prompt lookup: the tokens that followed the most recent earlier occurrence of the context's
 * last n-gram (n from `maxN` down to `minN`), at most `count` of them; none when nothing matches.
 * The default minN of 2: a single-token match proposes drafts that are mostly rejected (on the
 * greedy stories260K story, 200 tokens from BOS, 1-grams add 155 draft tokens to verify for 12 more accepted), and a
 * verification costs the same whatever it accepts.
 */
export function lookupDraft(context: readonly number[], count: number, maxN = 3, minN = 2): number[] {
  const L = context.length;
  for (let n = Math.min(maxN, L - 1); n >= minN; n--) {
    for (let start = L - n - 1; start >= 0; start--) {
      let same = true;
      for (let i = 0; i < n; i++) {
        if (context[start + i] !== context[L - n + i]) {
          same = false;
          break;
        }
      }
      if (same) {
        const from = start + n;
        const draft = context.slice(from, Math.min(from + count, L));
        if (draft.length > 0) return draft;
      }
    }
  }
  return [];
}

/**
 * The speculative-sampling step for one position: target weights `w` (unnormalised), a drafted
 * token `d` with draft probability 1, and two uniforms. Returns the emitted token and whether it
 * is the draft (accepted).
 */
export function acceptOrResample(w: Float64Array, d: number, u1: number, u2: number): { token: number; accepted: boolean } {
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += w[i];
  const pd = sum > 0 ? w[d] / sum : 0;
  if (u1 < pd) return { token: d, accepted: true };
  const residual = Float64Array.from(w);
  residual[d] = 0;
  return { token: drawFrom(residual, u2), accepted: false };
}

/** Proposes up to `count` tokens to follow `ctx` (fewer or none when it has no guess). */
export type Drafter = (ctx: readonly number[], count: number) => Promise<number[]>;

export const promptLookup: Drafter = async (ctx, count) => lookupDraft(ctx, count);

/**
 * A draft model's greedy continuation. Its executor keeps its own KV cache: each round feeds the
 * context tokens it has not seen (the prompt through its batched forward the first time), then
 * decodes `count` tokens; the drafted positions are overwritten by the next round's feed.
 */
export function modelDrafter(draft: Executor, context: number): Drafter {
  let seen = 0;
  return async (ctx, count) => {
    const from = Math.min(seen, ctx.length - 1);
    const fit = Math.min(count, context - ctx.length);
    if (fit < 1) return [];
    let inputs = ctx.slice(from);
    if (inputs.length > 1 && draft.forwardMany) {
      await draft.forwardMany(inputs.slice(0, -1), from, 'none');
      inputs = inputs.slice(-1);
    }
    const pos = ctx.length - inputs.length;
    const out = await draft.decode(inputs, pos, inputs.length - 1 + fit, GREEDY);
    seen = ctx.length;
    return out;
  };
}

export interface SpeculationStats {
  /** Draft tokens proposed (verified). */
  draftTokens: number;
  /** Draft tokens accepted. */
  acceptedTokens: number;
  /** Verification passes (batched forwards). */
  rounds: number;
}

/**
 * One round after `ctx` (whose last token is not yet in the KV cache; every earlier one is):
 * draft up to `n` tokens, verify them in one batched forward, return the emitted tokens (the
 * accepted draft and one more), at most `left`. Without a draft, `fallback` tokens are decoded
 * the ordinary way (the looped mode's K per dispatch).
 */
export async function speculateRound(
  executor: Executor, ctx: readonly number[], left: number, sampling: SamplingOptions, n: number, stats: SpeculationStats,
  contextLimit: number, fallback: number, drafter: Drafter = promptLookup,
): Promise<number[]> {
  if (!executor.forwardMany) throw new KloopError(`speculation: the ${executor.mode} executor has no batched forward`);
  const pos = ctx.length - 1;
  // Room: the draft and the token after it stay within the budget and the context.
  const room = Math.min(n, left - 1, contextLimit - ctx.length);
  const draft = room > 0 ? (await drafter(ctx, room)).slice(0, room) : [];
  if (draft.length === 0) return executor.decode([ctx[pos]!], pos, Math.max(1, Math.min(fallback, left)), sampling);
  const rows = await executor.forwardMany([ctx[pos]!, ...draft], pos, 'all');
  stats.rounds += 1;
  stats.draftTokens += draft.length;
  const out: number[] = [];
  for (let i = 0; i <= draft.length; i++) {
    const at = pos + i; // the position the logits row was computed at
    let token: number;
    let accepted = false;
    if (sampling.temperature === 0) {
      token = argmax(rows[i]!);
      accepted = i < draft.length && token === draft[i];
    } else {
      const w = nucleusWeights(rows[i]!, sampling);
      if (i < draft.length) {
        ({ token, accepted } = acceptOrResample(w, draft[i]!, uniformAt(sampling.seed, at), uniformAt(pcgHash(sampling.seed ^ 0x5bd1e995), at)));
      } else {
        token = drawFrom(w, uniformAt(sampling.seed, at));
      }
    }
    out.push(token);
    if (!accepted) break;
    stats.acceptedTokens += 1;
  }
  return out;
}
