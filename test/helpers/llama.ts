/**
 * llama.cpp (node-llama-cpp, an optional dependency) beside kloop's reference executor: the
 * tests that check a GGUF file kloop wrote by continuing it greedily in both.
 */
import { ReferenceExecutor } from '../../src/engine/reference.ts';
import type { LoadedModel } from '../../src/loader/types.ts';
import { argmaxOf } from './gpu.ts';

type NodeLlamaCpp = typeof import('node-llama-cpp');
type LlamaModel = Awaited<ReturnType<Awaited<ReturnType<NodeLlamaCpp['getLlama']>>['loadModel']>>;

/** node-llama-cpp, or undefined with the test skipped and the reason printed. */
export async function llamaCppOrSkip(ctx: { skip(): void }): Promise<NodeLlamaCpp | undefined> {
  try {
    return await import('node-llama-cpp');
  } catch (e) {
    console.log(`SKIPPED: node-llama-cpp cannot be imported (${(e as Error).message.split('\n')[0]})`);
    ctx.skip();
    return undefined;
  }
}

/** The reference executor's greedy continuation of `prompt` (fed from position 0): `steps` tokens. */
export function referenceGreedy(model: LoadedModel, prompt: number[], steps: number): number[] {
  const ex = new ReferenceExecutor(model);
  let logits: Float32Array = new Float32Array(0);
  for (let p = 0; p < prompt.length; p++) logits = ex.forward(prompt[p]!, p);
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    out.push(argmaxOf(logits));
    logits = ex.forward(out[i]!, prompt.length + i);
  }
  return out;
}

/**
 * llama.cpp's greedy continuation of `prompt` on a loaded model: `steps` tokens, in a context of
 * `contextSize` on one thread (llama.cpp's spinning worker threads crawl on a busy machine with
 * few cores), disposed afterwards.
 */
export async function llamaGreedy(model: LlamaModel, prompt: number[], steps: number, contextSize: number): Promise<number[]> {
  const context = await model.createContext({ contextSize, threads: 1 });
  try {
    const out: number[] = [];
    for await (const t of context.getSequence().evaluate(prompt as never, { temperature: 0 })) {
      out.push(t as number);
      if (out.length >= steps) break;
    }
    return out;
  } finally {
    await context.dispose();
  }
}
