/**
 * Model loading entry point: detects the format of `path` and returns a LoadedModel.
 *
 * - a file ending in .gguf, or starting with the "GGUF" magic: GGUF v3;
 * - a folder holding config.json (or a .safetensors / config.json file inside one): Hugging Face;
 * - any other file (usually .bin): a llama2.c legacy v0 checkpoint. Its tokenizer is
 *   opts.tokenizer, else the one tok*.bin / tokenizer.bin beside the model.
 */
import { readdir, stat, open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { LoadedModel, Tokenizer } from './types.ts';
import { fileError, readJsonFile } from './util.ts';
import { loadLlama2c } from './llama2c.ts';
import { JsonTokenizer } from './tokenizer.ts';
import { loadGguf } from './gguf.ts';
import { loadHF } from './hf.ts';

export { loadLlama2c, readLlama2cWeights, parseLlama2cHeader, loadLlama2cTokenizer, readLlama2cTokenizer } from './llama2c.ts';
export { loadGguf } from './gguf.ts';
export { loadHF } from './hf.ts';
export { convertToHF } from './convert.ts';
export { resolveDefaultModel } from './resolve.ts';
export { JsonTokenizer, parseLlama2cTokenizer, buildSpmTokenizerJson, spmTokenizer } from './tokenizer.ts';
export type { SpmVocab } from './tokenizer.ts';

export interface LoadOptions {
  /** Tokenizer for a llama2.c checkpoint: a llama2.c tokenizer .bin or a tokenizer.json. */
  tokenizer?: string;
}

export type DetectedFormat = 'llama2c' | 'gguf' | 'hf';

/** The format of `path` (and, for Hugging Face, the folder to load). */
export async function detectFormat(path: string): Promise<{ format: DetectedFormat; path: string }> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw fileError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (st.isDirectory()) {
    const has = await exists(join(path, 'config.json'));
    if (!has) throw fileError(path, 'folder has no config.json (a Hugging Face model folder is expected)');
    return { format: 'hf', path };
  }
  const name = basename(path).toLowerCase();
  if (name.endsWith('.gguf')) return { format: 'gguf', path };
  if (name.endsWith('.safetensors') || name === 'config.json' || name === 'model.safetensors.index.json') {
    return { format: 'hf', path: dirname(path) };
  }
  if (!st.isFile()) throw fileError(path, 'not a regular file or folder');
  const magic = Buffer.alloc(4);
  try {
    const fh = await open(path, 'r');
    try {
      await fh.read(magic, 0, 4, 0);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw fileError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (magic.toString('latin1') === 'GGUF') return { format: 'gguf', path };
  return { format: 'llama2c', path };
}

/** Load a model from a llama2.c .bin, a .gguf, or a Hugging Face folder. */
export async function loadModel(path: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const d = await detectFormat(path);
  switch (d.format) {
    case 'gguf':
      return loadGguf(d.path);
    case 'hf':
      return loadHF(d.path);
    case 'llama2c': {
      const tokPath = opts.tokenizer ?? (await findLlama2cTokenizer(d.path));
      let tok: string | Tokenizer = tokPath;
      if (tokPath.toLowerCase().endsWith('.json')) {
        const json = await readJsonFile(tokPath, 1 << 30);
        tok = new JsonTokenizer(json as Record<string, unknown>, { source: tokPath, bosId: 1, eosId: 2 });
      }
      return loadLlama2c(d.path, tok);
    }
  }
}

/** The tokenizer beside a llama2.c checkpoint: the only tok*.bin there, or tokenizer.bin. */
export async function findLlama2cTokenizer(modelPath: string): Promise<string> {
  const dir = dirname(modelPath);
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    names = [];
  }
  const candidates = names
    .filter((n) => /^tok.*\.bin$/i.test(n) && n !== basename(modelPath))
    .sort();
  if (candidates.length === 1) return join(dir, candidates[0]!);
  if (candidates.includes('tokenizer.bin')) return join(dir, 'tokenizer.bin');
  if (candidates.length === 0) {
    throw fileError(modelPath, `no tokenizer found beside the model (looked for tok*.bin and tokenizer.bin in ${dir}); pass --tokenizer`);
  }
  throw fileError(modelPath, `several tokenizers beside the model (${candidates.join(', ')}); pass --tokenizer to choose one`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
