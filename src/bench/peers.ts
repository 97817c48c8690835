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

/** A GPU backend of node-llama-cpp's prebuilt llama.cpp builds. */
export const LLAMA_GPUS = ['vulkan', 'cuda', 'metal'] as const;
export type LlamaGpu = (typeof LLAMA_GPUS)[number];

interface LlamaModule {
  getLlama(o: Record<string, unknown>): Promise<{
    gpu: string | false;
    getGpuDeviceNames(): Promise<string[]>;
    loadModel(o: { modelPath: string; gpuLayers?: 'max' | number }): Promise<{
      createContext(o: Record<string, unknown>): Promise<{
        getSequence(): {
          clearHistory(): Promise<void>;
          evaluate(tokens: number[], o: Record<string, unknown>): AsyncIterable<number>;
        };
        dispose(): Promise<void>;
      }>;
      tokens: { bos: number | null };
      gpuLayers: number;
      fileInsights: { totalLayers: number };
      dispose(): Promise<void>;
    }>;
    dispose(): Promise<void>;
  }>;
}

/**
 * llama.cpp (node-llama-cpp) on `gguf`: on the CPU with `threads` threads, or with every layer
 * on the GPU through its `gpu` build (Vulkan, CUDA, Metal). Returns a message instead of a peer
 * when the package is absent, the backend does not load (never a silent fall back to the CPU),
 * or the model does not load.
 */
export async function llamaCppPeer(gguf: string, maxTokens: number, threads = 1, gpu?: LlamaGpu): Promise<Peer | string> {
  let mod: LlamaModule;
  try {
    const name = 'node-llama-cpp';
    mod = (await import(/* @vite-ignore */ name)) as LlamaModule;
  } catch {
    return 'llama.cpp peer skipped: node-llama-cpp is not installed (add it with: npm install node-llama-cpp)';
  }
  try {
    const llama = await mod.getLlama({ gpu: gpu ?? false, build: 'never', progressLogs: false, logLevel: 'error' });
    if (gpu && llama.gpu !== gpu) {
      await llama.dispose();
      return `llama.cpp peer skipped: node-llama-cpp has no working ${gpu} build here (got ${llama.gpu || 'the CPU'})`;
    }
    // A backend whose driver offers no device it uses (llama.cpp skips CPU-type Vulkan devices)
    // falls back to the CPU without a word: the device list and the offloaded layers tell.
    const devices = gpu ? await llama.getGpuDeviceNames() : [];
    if (gpu && devices.length === 0) {
      await llama.dispose();
      return `llama.cpp peer skipped: its ${gpu} build sees no GPU device here`;
    }
    const model = await llama.loadModel(gpu ? { modelPath: gguf, gpuLayers: 'max' } : { modelPath: gguf });
    if (gpu && model.gpuLayers < model.fileInsights.totalLayers) {
      await model.dispose();
      await llama.dispose();
      return `llama.cpp peer skipped: only ${model.gpuLayers} of ${model.fileInsights.totalLayers} layers on the ${gpu} device`;
    }
    const ctx = await model.createContext({ contextSize: Math.max(256, maxTokens + 16), batchSize: 32, ...(gpu ? {} : { threads }) });
    const seq = ctx.getSequence();
    const bos = model.tokens.bos ?? 1;
    const where = gpu ? `${gpu}, ${devices.join(' + ')}, all layers` : `CPU, ${threads} thread${threads > 1 ? 's' : ''}`;
    return {
      name: `llama.cpp (node-llama-cpp, ${where})`,
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
