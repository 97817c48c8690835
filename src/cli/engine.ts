/**
 * What the model-running commands share: loading the model named by --model/--tokenizer (or the
 * default one), and opening an executor in a mode with the device it runs on.
 */
import { KloopError } from '../errors.ts';
import { acquireDevice, type AcquiredDevice, type AdapterDescription } from '../engine/device.ts';
import { createExecutor, type Executor, type Mode } from '../engine/executor.ts';
import { detectFormat, loadModel, resolveDefaultModel } from '../loader/index.ts';
import type { LoadedModel } from '../loader/types.ts';
import { intFlag, pathFlag } from './args.ts';
import type { Io } from './io.ts';

/** What the reference mode reports as its adapter: no GPU is opened. */
export const REFERENCE_ADAPTER: AdapterDescription = { vendor: 'cpu', architecture: 'reference', description: 'CPU reference (float64)' };

/** Largest KV cache a GPU executor allocates by default (positions). */
const DEFAULT_MAX_CONTEXT = 2048;

/** Loads --model (default: stories260K, see resolveDefaultModel) with --tokenizer for llama2.c checkpoints. */
export async function openModel(flags: { model?: string; tokenizer?: string }): Promise<LoadedModel> {
  const tokenizer = pathFlag('tokenizer', flags.tokenizer);
  const path = pathFlag('model', flags.model) ?? (await resolveDefaultModel());
  if (tokenizer !== undefined) {
    const { format } = await detectFormat(path);
    if (format !== 'llama2c') throw new KloopError(`--tokenizer: only a llama2.c checkpoint takes a separate tokenizer (${path} is ${format})`);
  }
  return loadModel(path, { tokenizer });
}

/** --context: KV positions, default the model's context capped at 2048 (what the GPU executor allocates). */
export function contextFlag(value: string | undefined, model: LoadedModel): number {
  const seqLen = model.config.seqLen;
  if (value === undefined) return Math.min(seqLen, DEFAULT_MAX_CONTEXT);
  return intFlag('context', value, 1, seqLen);
}

export interface ExecutorFlags {
  adapter?: string;
  /** Looped mode only. */
  tokensPerDispatch?: number;
  context: number;
}

export interface OpenedExecutor {
  executor: Executor;
  /** The adapter it runs on (REFERENCE_ADAPTER in the reference mode). */
  adapter: AdapterDescription;
  /** Dawn's name of the adapter, or the reference's description. */
  adapterName: string;
  /** Frees the executor's buffers and the device. */
  close(): void;
}

/** Opens `mode` on `model`; only the GPU modes open a device (--adapter picks it). */
export async function openExecutor(model: LoadedModel, mode: Mode, f: ExecutorFlags, io: Io): Promise<OpenedExecutor> {
  const log = (line: string) => io.err(`${line}\n`);
  if (mode === 'reference' && f.adapter !== undefined) throw new KloopError('--adapter: the reference mode runs on the CPU and opens no adapter');
  let device: AcquiredDevice | undefined;
  let executor: Executor;
  try {
    executor = await createExecutor(model, mode, async () => (device = await acquireDevice(f.adapter, log)), {
      tokensPerDispatch: f.tokensPerDispatch,
      context: f.context,
      log,
    });
  } catch (e) {
    device?.device.destroy();
    throw e;
  }
  return {
    executor,
    adapter: device?.info ?? REFERENCE_ADAPTER,
    adapterName: device?.name ?? REFERENCE_ADAPTER.description,
    close() {
      executor.destroy();
      device?.device.destroy();
    },
  };
}
