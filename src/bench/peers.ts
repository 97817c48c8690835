/**
 * Peers measured in the same run as the engine: llama.cpp through node-llama-cpp (CPU, one
 * thread, the GGUF of the same model) and kloop's own CPU reference executor.
 *
 * node-llama-cpp is not a dependency of the package (a dev dependency of this repository): when it
 * is not installed (or its prebuilt binary cannot load) the llama.cpp peer is skipped with a
 * message saying how to add it, never an error.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { KloopError } from '../errors.ts';

/** One peer: prepared once, then timed in the interleaved repeats like a mode. */
export interface Peer {
  name: string;
  /** Decodes `tokens` tokens greedily from a fresh context; resolves when done. */
  run(tokens: number): Promise<void>;
  dispose(): Promise<void>;
}

/**
 * The GGUF to give llama.cpp: `explicit` if set, else the model file itself when it is one,
 * else `<name>.gguf` beside it, else the only .gguf in its folder.
 */
export async function findGguf(modelPath: string | undefined, explicit?: string): Promise<string | undefined> {
  if (explicit) {
    const st = await stat(explicit).catch(() => undefined);
    if (!st?.isFile()) throw new KloopError(`--gguf ${explicit}: no such file`);
    return explicit;
  }
  if (!modelPath) return undefined;
  if (extname(modelPath).toLowerCase() === '.gguf') return modelPath;
  const st = await stat(modelPath).catch(() => undefined);
  const dir = st?.isDirectory() ? modelPath : dirname(modelPath);
  const files = await readdir(dir).catch(() => [] as string[]);
  const ggufs = files.filter((f) => f.toLowerCase().endsWith('.gguf'));
  const same = `${basename(modelPath, extname(modelPath))}.gguf`;
  if (ggufs.includes(same)) return join(dir, same);
  return ggufs.length === 1 ? join(dir, ggufs[0]!) : undefined;
}

interface LlamaModule {
  getLlama(o: Record<string, unknown>): Promise<{
    loadModel(o: { modelPath: string }): Promise<{
      createContext(o: Record<string, unknown>): Promise<{
        getSequence(): {
          clearHistory(): Promise<void>;
          evaluate(tokens: number[], o: Record<string, unknown>): AsyncIterable<number>;
        };
        dispose(): Promise<void>;
      }>;
      tokens: { bos: number | null };
      dispose(): Promise<void>;
    }>;
    dispose(): Promise<void>;
  }>;
}

/**
 * llama.cpp (node-llama-cpp, CPU, `threads` threads) on `gguf`. Returns a message instead of a
 * peer when the package is absent or cannot load the model.
 */
export async function llamaCppPeer(gguf: string, maxTokens: number, threads = 1): Promise<Peer | string> {
  let mod: LlamaModule;
  try {
    const name = 'node-llama-cpp';
    mod = (await import(/* @vite-ignore */ name)) as LlamaModule;
  } catch {
    return 'llama.cpp peer skipped: node-llama-cpp is not installed (add it with: npm install node-llama-cpp)';
  }
  try {
    const llama = await mod.getLlama({ gpu: false, build: 'never', progressLogs: false, logLevel: 'error' });
    const model = await llama.loadModel({ modelPath: gguf });
    const ctx = await model.createContext({ contextSize: Math.max(256, maxTokens + 16), threads, batchSize: 32 });
    const seq = ctx.getSequence();
    const bos = model.tokens.bos ?? 1;
    return {
      name: `llama.cpp (node-llama-cpp, CPU, ${threads} thread${threads > 1 ? 's' : ''})`,
      async run(tokens: number): Promise<void> {
        await seq.clearHistory();
        let n = 0;
        for await (const _ of seq.evaluate([bos], { temperature: 0 })) {
          void _;
          if (++n >= tokens) break;
        }
      },
      async dispose(): Promise<void> {
        await ctx.dispose();
        await model.dispose();
        await llama.dispose();
      },
    };
  } catch (e) {
    return `llama.cpp peer skipped: node-llama-cpp could not run ${gguf} (${(e as Error).message.split('\n')[0]})`;
  }
}
