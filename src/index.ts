/**
 * kloop's package entry for Node: the same API as the browser entry (src/browser/index.ts),
 * with loadModel also reading paths: a llama2.c .bin (its tok*.bin found beside it), a .gguf,
 * or a Hugging Face folder. URLs are fetched; ArrayBuffers and Blobs are read in memory.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { loadModel as loadModelFromPath } from './loader/index.ts';
import type { LoadedModel, Tokenizer } from './loader/types.ts';
import { type ByteSource, type LoadOptions, type ModelFiles, type ModelSource, loadModel as loadModelFromSource } from './browser/load.ts';
import { KloopError } from './errors.ts';

export * from './browser/index.ts';
export { detectFormat, findLlama2cTokenizer, resolveDefaultModel, convertToHF } from './loader/index.ts';

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:/i;

/** The file path a source names: a string that is not a URL (a Windows drive path counts), or a file: URL. */
function asPath(s: ByteSource | Tokenizer | undefined): string | undefined {
  if (s instanceof URL) return s.protocol === 'file:' ? fileURLToPath(s) : undefined;
  if (typeof s !== 'string') return undefined;
  if (s.startsWith('file:')) return fileURLToPath(s);
  return !URL_SCHEME.test(s) || /^[a-z]:[\\/]/i.test(s) ? s : undefined;
}

async function readPath(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new KloopError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/**
 * Load a model from a path (file or Hugging Face folder), a URL, an ArrayBuffer / typed array,
 * a Blob, or a `{ model, tokenizer }` pair of those.
 */
export async function loadModel(source: ModelSource, opts: LoadOptions = {}): Promise<LoadedModel> {
  const files: ModelFiles =
    typeof source === 'object' && source !== null && 'model' in source && !(source instanceof URL) ? (source as ModelFiles) : { model: source };
  const modelPath = asPath(files.model);
  const tok = files.tokenizer ?? opts.tokenizer;
  const tokPath = asPath(tok);
  // Paths only (or a path and no tokenizer): the path loader, which also reads folders.
  if (modelPath !== undefined && (tok === undefined || tokPath !== undefined)) {
    const m = await loadModelFromPath(modelPath, tokPath ? { tokenizer: tokPath } : {});
    const name = files.name ?? opts.name;
    return name ? { ...m, name } : m;
  }
  return loadModelFromSource(source, { ...opts, readPath: opts.readPath ?? readPath });
}
