/**
 * What every executor is: the mode names, the Executor interface and its counters, and the
 * position/token checks the reference and the GPU executors share. Imports no executor, so
 * each executor and the factory (executor.ts) can import it without a cycle.
 */
import { KloopError } from '../errors.ts';
import type { SamplingOptions } from './sampler.ts';

export const MODES = ['reference', 'per-op', 'per-layer', 'looped'] as const;
export type Mode = (typeof MODES)[number];

export interface ExecutorStats {
  /** Decode steps run (one per token position). */
  steps: number;
  dispatches: number;
  submits: number;
  /** Fused steps re-run with per-op dispatches after a barrier timeout. */
  fallbacks: number;
  /** Workgroups of a fused dispatch (discovered per adapter); 0 when not applicable. */
  workgroups: number;
}

/** Which logits a batched forward returns: every token's, the last token's, or none (prefill). */
export type LogitsWanted = 'all' | 'last' | 'none';

export interface Executor {
  readonly mode: Mode;
  readonly stats: ExecutorStats;
  /** Teacher-forced step: feed `token` at `pos`, return the logits. */
  forward(token: number, pos: number): Promise<Float32Array>;
  /**
   * Runs `steps` decode steps from `pos`: step j feeds inputs[j] while there are inputs, else the
   * token sampled at step j-1. Returns the tokens sampled at steps inputs.length-1 .. steps-1.
   */
  decode(inputs: number[], pos: number, steps: number, sampling: SamplingOptions): Promise<number[]>;
  /**
   * Teacher-forced batched forward: feeds tokens at pos, pos+1, ... (several per weight read on
   * the GPU) and returns the logits rows `want`ed. The KV cache holds them all afterwards.
   */
  forwardMany?(tokens: number[], pos: number, want?: LogitsWanted): Promise<Float32Array[]>;
  destroy(): void;
}

/** Throws unless positions pos .. pos+steps-1 fit a context of `context` tokens. */
export function checkPositions(pos: number, steps: number, context: number): void {
  if (pos + steps > context) throw new KloopError(`position ${pos + steps - 1} is past the context of ${context} tokens`);
}

/** Throws unless `t` is a token id of a `vocab`-sized vocabulary; `what` names where it came from. */
export function checkToken(t: number, vocab: number, what: string): void {
  if (!Number.isInteger(t) || t < 0 || t >= vocab) {
    throw new KloopError(`${what}: token id ${t} is outside the vocabulary (0..${vocab - 1})`);
  }
}
