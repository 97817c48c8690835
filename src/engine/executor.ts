/**
 * The executor interface every mode implements, and the factory the CLI, the benchmark and the
 * browser use. All executors run the same schedule (src/engine/schedule.ts) and must agree.
 */
import type { LoadedModel } from '../loader/types.ts';
import type { AcquiredDevice } from './device.ts';
import type { GpuOptions } from './gpu-executor.ts';
import { ReferenceExecutor } from './reference.ts';
import { type SamplingOptions, sample } from './sampler.ts';
import { KloopError } from '../errors.ts';

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

/** The CPU oracle behind the Executor interface (host sampling, same semantics as the device). */
export class ReferenceEngine implements Executor {
  readonly mode = 'reference' as const;
  readonly stats: ExecutorStats = { steps: 0, dispatches: 0, submits: 0, fallbacks: 0, workgroups: 0 };
  private readonly ref: ReferenceExecutor;
  constructor(private readonly model: LoadedModel) {
    this.ref = new ReferenceExecutor(model);
  }
  private check(pos: number, steps: number, tokens: number[]): void {
    const c = this.model.config;
    checkPositions(pos, steps, c.seqLen);
    for (const t of tokens) checkToken(t, c.vocabSize, 'input');
  }
  async forward(token: number, pos: number): Promise<Float32Array> {
    this.check(pos, 1, [token]);
    this.stats.steps++;
    return this.ref.forward(token, pos);
  }
  async decode(inputs: number[], pos: number, steps: number, sampling: SamplingOptions): Promise<number[]> {
    this.check(pos, steps, inputs);
    const out: number[] = [];
    let last = inputs[0];
    for (let j = 0; j < steps; j++) {
      const tok = j < inputs.length ? inputs[j] : last;
      const logits = this.ref.forward(tok, pos + j);
      if (j >= inputs.length - 1) {
        last = sample(logits, sampling, pos + j);
        out.push(last);
      }
    }
    this.stats.steps += steps;
    return out;
  }
  destroy(): void {}
}

export async function createExecutor(
  model: LoadedModel,
  mode: Mode,
  gpu: () => Promise<AcquiredDevice>,
  opts: Omit<GpuOptions, 'mode'> = {},
): Promise<Executor> {
  if (mode === 'reference') return new ReferenceEngine(model);
  const { GpuExecutor } = await import('./gpu-executor.ts');
  return GpuExecutor.create(model, await gpu(), { ...opts, mode });
}
