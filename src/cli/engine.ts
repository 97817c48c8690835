/**
 * What the model-running commands share: loading the model named by --model/--tokenizer (or the
 * default one), and opening a session on it (src/engine/session.ts) from the flags.
 */
import { statSync } from 'node:fs';
import { KloopError } from '../errors.ts';
import { DEFAULTS, type Session, openSession } from '../engine/session.ts';
import { detectFormat, loadModel, resolveDefaultModel } from '../loader/index.ts';
import type { LoadedModel } from '../loader/types.ts';
import { intFlag, pathFlag } from './args.ts';
import type { Io } from './io.ts';

/**
 * Says on stderr when $KLOOP_MODELS is set but names no folder: the default model is then looked
 * for in its other places (resolveDefaultModel), which would otherwise hide the mistake.
 */
export function checkModelsEnv(io: Io, env: Record<string, string | undefined> = process.env): void {
  const dir = env.KLOOP_MODELS;
  if (!dir) return;
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) io.err(`kloop: warning: KLOOP_MODELS=${dir} is not a folder; looking for the default model elsewhere\n`);
}

/** The default model's path (resolveDefaultModel), after checkModelsEnv. */
export async function defaultModelPath(io: Io): Promise<string> {
  checkModelsEnv(io);
  return resolveDefaultModel();
}

/** Loads --model (default: stories260K, see resolveDefaultModel) with --tokenizer for llama2.c checkpoints. */
export async function openModel(flags: { model?: string; tokenizer?: string }, io: Io): Promise<LoadedModel> {
  const tokenizer = pathFlag('tokenizer', flags.tokenizer);
  const path = pathFlag('model', flags.model) ?? (await defaultModelPath(io));
  if (tokenizer !== undefined) await checkTokenizer(path);
  return loadModel(path, { tokenizer });
}

/** --seed and --tokenizer beside --shape: a seed makes a synthetic model's weights, a tokenizer goes with a file. */
export function checkShapeFlags(f: { shape?: string; seed?: string; tokenizer?: string }): void {
  if (f.seed !== undefined && f.shape === undefined) throw new KloopError('--seed: only a synthetic --shape model has seeded weights');
  if (f.tokenizer !== undefined && f.shape !== undefined) {
    throw new KloopError('--tokenizer: a synthetic --shape model has its own placeholder vocabulary and takes no tokenizer');
  }
}

/** --tokenizer is for a llama2.c checkpoint only (other formats carry their own). */
export async function checkTokenizer(path: string): Promise<void> {
  const { format } = await detectFormat(path);
  if (format !== 'llama2c') throw new KloopError(`--tokenizer: only a llama2.c checkpoint takes a separate tokenizer (${path} is ${format})`);
}

/** --context: KV positions, default the session's (the model's context capped at DEFAULTS.maxContext). */
export function contextFlag(value: string | undefined, model: LoadedModel): number {
  const seqLen = model.config.seqLen;
  if (value === undefined) return Math.min(seqLen, DEFAULTS.maxContext);
  return intFlag('context', value, 1, seqLen);
}

/** A session from --adapter and --context, its messages on stderr. */
export function sessionFromFlags(model: LoadedModel, f: { adapter?: string; context?: string }, io: Io): Session {
  return openSession(model, { adapter: f.adapter, context: contextFlag(f.context, model), log: (line) => io.err(`${line}\n`) });
}
