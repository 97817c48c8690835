/**
 * The executor interface every mode implements, and the factory the CLI, the benchmark and the
 * browser use. All executors run the same schedule (src/engine/schedule.ts) and must agree.
 */
import type { LoadedModel } from '../loader/types.ts';
import type { AcquiredDevice } from './device.ts';
import type { GpuOptions } from './gpu-executor.ts';
import { ReferenceExecutor } from './reference.ts';
import { type SamplingOptions, sample } from './sampler.ts';
import { type Executor, type ExecutorStats, type LogitsWanted, type Mode, checkPositions, checkToken } from './interface.ts';

export { MODES, type Mode, type ExecutorStats, type Executor, type LogitsWanted, checkPositions, checkToken } from './interface.ts';

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
  /** The reference has no batched kernel: the tokens go through forward() one by one. */
  async forwardMany(tokens: number[], pos: number, want: LogitsWanted = 'all'): Promise<Float32Array[]> {
    this.check(pos, tokens.length, tokens);
    const out: Float32Array[] = [];
    tokens.forEach((t, j) => {
      const logits = this.ref.forward(t, pos + j);
      if (want === 'all' || (want === 'last' && j === tokens.length - 1)) out.push(logits);
    });
    this.stats.steps += tokens.length;
    return out;
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
