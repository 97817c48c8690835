/**
 * Loading a model from bytes: a URL (fetched), an ArrayBuffer / typed array, or a Blob / File
 * (a file input or a drop). The format is found by its magic, not its name:
 *
 * - "GGUF": a GGUF v2/v3 file, tokenizer included;
 * - anything else is read as a llama2.c v0 checkpoint, whose header is checked against its
 *   size; it needs a tokenizer (a llama2.c tokenizer .bin or a tokenizer.json), given as
 *   `{ model, tokenizer }` or `options.tokenizer`.
 *
 * Hugging Face folders (config.json + safetensors) load in Node only, through the path loader.
 * `options.signal` stops a load at once, even a download that never answers. Mistakes a user can
 * fix (an empty file, a tokenizer given as the model, a missing tokenizer...) throw a LoadError
 * whose `problem` names them, for front ends to word in their own terms.
 * Nothing here imports a Node module: this file is part of the browser bundle.
 */
import { KloopError } from '../errors.ts';
import { loadGguf } from '../loader/gguf.ts';
import { loadLlama2c, parseLlama2cHeader } from '../loader/llama2c.ts';
import { JsonTokenizer, parseLlama2cTokenizer, spmTokenizer } from '../loader/tokenizer.ts';
import type { LoadedModel, ModelConfig, Tokenizer } from '../loader/types.ts';
import { BinaryFile, baseName, modelName, parseJson } from '../loader/util.ts';

/** Where bytes come from: a URL (string or URL), bytes in memory, or a Blob / File. */
export type ByteSource = string | URL | ArrayBuffer | ArrayBufferView | Blob;

/** A model with its tokenizer given separately (llama2.c checkpoints need one). */
export interface ModelFiles {
  model: ByteSource;
  tokenizer?: ByteSource | Tokenizer;
  /** Name to show (default: from the URL or file name). */
  name?: string;
}

export type ModelSource = ByteSource | ModelFiles;

export interface LoadProgress {
  /** Which file: its URL or name. */
  what: string;
  loaded: number;
  /** Total bytes, when known. */
  total?: number;
}

export interface LoadOptions {
  /** Tokenizer for a llama2.c checkpoint (a source, or an already built Tokenizer). */
  tokenizer?: ByteSource | Tokenizer;
  /** Name to show (default: from the URL or file name). */
  name?: string;
  /** Called as bytes arrive. */
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** fetch implementation (default globalThis.fetch). */
  fetch?: (url: string, init?: { signal?: AbortSignal }) => Promise<Response>;
  /**
   * Reads a string source that is not a URL (a file path). Absent in the browser, where a
   * string is a URL relative to the page; the Node entry (src/index.ts) passes a file reader.
   */
  readPath?: (path: string) => Promise<Uint8Array>;
}

export type BytesFormat = 'gguf' | 'llama2c' | 'safetensors' | 'json';

/**
 * What went wrong with a load, for front ends that word it for their own users (the demo page
 * says which field to fill or which file to drop): the load was stopped (`signal`), a file is
 * empty, a llama2.c checkpoint came without its tokenizer, a tokenizer or a sentencepiece
 * tokenizer.model was given as the model, or a file is neither a model nor a tokenizer.
 */
export type LoadProblem = 'stopped' | 'empty' | 'needs-tokenizer' | 'tokenizer-not-model' | 'sentencepiece' | 'not-a-model' | 'not-a-tokenizer';

/** A KloopError whose `problem` says what kind of mistake it is. */
export class LoadError extends KloopError {
  readonly problem: LoadProblem;
  constructor(problem: LoadProblem, message: string) {
    super(message);
    this.problem = problem;
  }
}

/** The format of a model file's bytes, from its first bytes. */
export function detectBytesFormat(bytes: Uint8Array): BytesFormat {
  if (bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 && bytes[3] === 0x46) return 'gguf';
  if (firstNonSpace(bytes) === 0x7b) return 'json';
  // safetensors: u64 header length, then a JSON object.
  if (bytes.length >= 9 && bytes[8] === 0x7b) {
    const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
    if (n > 1n && n < BigInt(bytes.length)) return 'safetensors';
  }
  return 'llama2c';
}

function firstNonSpace(bytes: Uint8Array): number | undefined {
  for (let i = 0; i < Math.min(bytes.length, 64); i++) {
    const b = bytes[i]!;
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return b;
  }
  return undefined;
}

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:/i;
const isBlob = (x: unknown): x is Blob => typeof Blob !== 'undefined' && x instanceof Blob;
const isModelFiles = (x: unknown): x is ModelFiles =>
  typeof x === 'object' && x !== null && 'model' in x && !ArrayBuffer.isView(x) && !(x instanceof ArrayBuffer) && !isBlob(x) && !(x instanceof URL);
const isTokenizer = (x: unknown): x is Tokenizer =>
  typeof x === 'object' && x !== null && typeof (x as Tokenizer).encode === 'function' && typeof (x as Tokenizer).decodeStep === 'function';

/** Throws a LoadError('stopped') once `signal` is aborted. */
function checkStopped(signal: AbortSignal | undefined, label: string): void {
  if (signal?.aborted) throw new LoadError('stopped', `${label}: loading stopped`);
}

/** `p`, or a LoadError('stopped') as soon as `signal` is aborted (for reads that take no signal). */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined, label: string): Promise<T> {
  if (!signal) return p;
  checkStopped(signal, label);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new LoadError('stopped', `${label}: loading stopped`));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * A sentencepiece tokenizer.model: a protobuf ModelProto, whose first field is a repeated
 * SentencePiece message (tag 0x0a, a varint length, then its own piece string, tag 0x0a).
 */
function isSentencepieceModel(bytes: Uint8Array): boolean {
  if (bytes.length < 4 || bytes[0] !== 0x0a) return false;
  let i = 1;
  while (i < Math.min(bytes.length, 6) && bytes[i]! & 0x80) i++;
  return bytes[i + 1] === 0x0a;
}

/** A short label for messages: the URL or path, the file name, or "ArrayBuffer". */
export function sourceLabel(src: ByteSource): string {
  if (typeof src === 'string') return src;
  if (src instanceof URL) return src.href;
  if (typeof File !== 'undefined' && src instanceof File) return src.name;
  if (isBlob(src)) return 'Blob';
  return src instanceof ArrayBuffer ? 'ArrayBuffer' : 'bytes';
}

/** The bytes of a source, and the label to name it by. */
export async function readBytes(src: ByteSource, opts: LoadOptions = {}): Promise<{ bytes: Uint8Array; label: string }> {
  if (src instanceof ArrayBuffer) return { bytes: new Uint8Array(src), label: opts.name ?? 'ArrayBuffer' };
  if (ArrayBuffer.isView(src)) return { bytes: new Uint8Array(src.buffer, src.byteOffset, src.byteLength), label: opts.name ?? 'bytes' };
  if (isBlob(src)) {
    const label = sourceLabel(src);
    opts.onProgress?.({ what: label, loaded: 0, total: src.size });
    let buf: ArrayBuffer;
    try {
      buf = await abortable(src.arrayBuffer(), opts.signal, label);
    } catch (e) {
      if (e instanceof LoadError) throw e;
      throw new KloopError(`${label}: cannot read the file (${(e as Error).message})`);
    }
    opts.onProgress?.({ what: label, loaded: buf.byteLength, total: src.size });
    return { bytes: new Uint8Array(buf), label };
  }
  let url: URL;
  if (src instanceof URL) url = src;
  else if (!URL_SCHEME.test(src) && opts.readPath) return { bytes: await opts.readPath(src), label: src };
  else {
    const base = (globalThis as { location?: { href?: string } }).location?.href;
    try {
      url = new URL(src, base);
    } catch {
      throw new KloopError(`${src}: not a URL (in Node, load a path through the package entry, src/index.ts)`);
    }
  }
  if (url.protocol === 'file:' && opts.readPath) return { bytes: await opts.readPath(decodeURIComponent(url.pathname)), label: url.href };
  return { bytes: await fetchBytes(url.href, opts), label: url.href };
}

async function fetchBytes(url: string, opts: LoadOptions): Promise<Uint8Array> {
  const doFetch = opts.fetch ?? ((u: string, init?: { signal?: AbortSignal }) => globalThis.fetch(u, init));
  const signal = opts.signal;
  let res: Response;
  try {
    // Raced with the signal too: a fetch implementation that ignores it still stops.
    res = await abortable(doFetch(url, { signal }), signal, url);
  } catch (e) {
    if (e instanceof LoadError || signal?.aborted) throw new LoadError('stopped', `${url}: download stopped`);
    throw new KloopError(`${url}: cannot fetch (${(e as Error).message})`);
  }
  if (!res.ok) throw new KloopError(`${url}: HTTP ${res.status} ${res.statusText}`.trim());
  const lengthHeader = res.headers.get('content-length');
  const total = lengthHeader ? Number(lengthHeader) : undefined;
  if (!res.body) {
    const buf = new Uint8Array(await abortable(res.arrayBuffer(), signal, url));
    opts.onProgress?.({ what: url, loaded: buf.length, total: buf.length });
    return buf;
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  opts.onProgress?.({ what: url, loaded, total });
  for (;;) {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await abortable(reader.read(), signal, url);
    } catch (e) {
      if (e instanceof LoadError || signal?.aborted) {
        void reader.cancel().catch(() => undefined);
        throw new LoadError('stopped', `${url}: download stopped after ${loaded} bytes`);
      }
      throw new KloopError(`${url}: download failed after ${loaded} bytes (${(e as Error).message})`);
    }
    if (r.done) break;
    chunks.push(r.value);
    loaded += r.value.length;
    opts.onProgress?.({ what: url, loaded, total });
  }
  if (total !== undefined && Number.isFinite(total) && loaded !== total) {
    throw new KloopError(`${url}: download ended after ${loaded} of ${total} bytes`);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(loaded);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** A tokenizer from its bytes: a tokenizer.json, else a llama2.c tokenizer .bin (`count` tokens). */
export function tokenizerFromBytes(bytes: Uint8Array, label: string, count?: number): Tokenizer {
  if (bytes.length === 0) throw new LoadError('empty', `${label}: the tokenizer file is empty`);
  if (isSentencepieceModel(bytes)) {
    throw new LoadError(
      'sentencepiece',
      `${label}: a sentencepiece tokenizer.model, which kloop does not read; give the llama2.c export of it (tok*.bin, tokenizer.bin) or a tokenizer.json`,
    );
  }
  const format = detectBytesFormat(bytes);
  if (format === 'gguf' || isLlama2cCheckpoint(bytes)) {
    throw new LoadError('not-a-tokenizer', `${label}: a ${format === 'gguf' ? 'GGUF model' : 'llama2.c checkpoint'}, not a tokenizer`);
  }
  if (firstNonSpace(bytes) === 0x7b) {
    const json = parseJson(label, new TextDecoder().decode(bytes));
    return new JsonTokenizer(json as Record<string, unknown>, { source: label, bosId: 1, eosId: 2 });
  }
  return spmTokenizer(parseLlama2cTokenizer(bytes, label, count), label);
}

/** Whether `bytes` hold a llama2.c checkpoint (its header parses and matches the size). */
function isLlama2cCheckpoint(bytes: Uint8Array): boolean {
  try {
    parseLlama2cHeader('', bytes.subarray(0, 28), bytes.length);
    return true;
  } catch {
    return false;
  }
}

/** Whether `bytes` parse as a llama2.c tokenizer .bin. */
function isLlama2cTokenizer(bytes: Uint8Array): boolean {
  try {
    parseLlama2cTokenizer(bytes, '');
    return true;
  } catch {
    return false;
  }
}

/** The error for bytes that are not a llama2.c checkpoint: what they are instead, when known. */
function notACheckpoint(bytes: Uint8Array, label: string, headerError: unknown): LoadError {
  if (isSentencepieceModel(bytes)) {
    return new LoadError('sentencepiece', `${label}: a sentencepiece tokenizer.model, not a model (kloop reads GGUF files and llama2.c checkpoints)`);
  }
  if (isLlama2cTokenizer(bytes)) {
    return new LoadError('tokenizer-not-model', `${label}: a llama2.c tokenizer, not a model; load a GGUF file, or a llama2.c checkpoint with this file as its tokenizer`);
  }
  const why = headerError instanceof Error ? headerError.message.replace(/^[^:]*: /, '') : String(headerError);
  return new LoadError('not-a-model', `${label}: neither a GGUF file nor a llama2.c checkpoint (read as llama2.c: ${why})`);
}

/** A model from the bytes of its file (and, for llama2.c, a tokenizer). */
export async function loadModelFromBytes(
  bytes: Uint8Array,
  label: string,
  tokenizer?: Tokenizer | { bytes: Uint8Array; label: string },
): Promise<LoadedModel> {
  if (bytes.length === 0) throw new LoadError('empty', `${label}: the file is empty (0 bytes)`);
  const format = detectBytesFormat(bytes);
  const file = BinaryFile.fromBytes(label, bytes);
  switch (format) {
    case 'gguf':
      return loadGguf(file);
    case 'safetensors':
    case 'json':
      throw new KloopError(
        `${label}: a Hugging Face ${format === 'json' ? 'config or tokenizer' : 'safetensors'} file; Hugging Face folders load in Node only (kloop --model DIR). ` +
          'In the browser, load a GGUF file or a llama2.c .bin with its tokenizer',
      );
    case 'llama2c': {
      // The header gives the vocabulary size the tokenizer is read to.
      let config: ModelConfig;
      try {
        config = parseLlama2cHeader(label, bytes.subarray(0, 28), bytes.length).config;
      } catch (e) {
        throw notACheckpoint(bytes, label, e);
      }
      if (!tokenizer) {
        throw new LoadError('needs-tokenizer', `${label}: a llama2.c checkpoint needs its tokenizer (pass { model, tokenizer }, e.g. stories260K.bin with tok512.bin)`);
      }
      const tok = isTokenizer(tokenizer) ? tokenizer : tokenizerFromBytes(tokenizer.bytes, tokenizer.label, config.vocabSize);
      return loadLlama2c(file, tok);
    }
  }
}

/**
 * Load a model from a URL, an ArrayBuffer / typed array, a Blob / File, or a `{ model, tokenizer }`
 * pair of those. A string is a URL (relative to the page in a browser) unless `opts.readPath`
 * reads paths (the Node entry).
 */
export async function loadModel(source: ModelSource, opts: LoadOptions = {}): Promise<LoadedModel> {
  const files: ModelFiles = isModelFiles(source) ? source : { model: source };
  const tokSrc = files.tokenizer ?? opts.tokenizer;
  const name = files.name ?? opts.name;
  checkStopped(opts.signal, sourceLabel(files.model));
  const { bytes, label } = await readBytes(files.model, { ...opts, name: undefined });
  let tok: Tokenizer | { bytes: Uint8Array; label: string } | undefined;
  if (tokSrc !== undefined && detectBytesFormat(bytes) !== 'gguf') {
    tok = isTokenizer(tokSrc) ? tokSrc : await readBytes(tokSrc, { ...opts, name: undefined });
  }
  checkStopped(opts.signal, label);
  const model = await loadModelFromBytes(bytes, label, tok);
  return { ...model, name: name ?? nameOf(files.model, label) };
}

function nameOf(src: ByteSource, label: string): string {
  if (typeof src === 'string' || src instanceof URL) {
    const path = (src instanceof URL ? src.pathname : src.replace(/[?#].*$/, '')) || label;
    return modelName(decodeURIComponent(baseName(path))) || 'model';
  }
  return modelName(label);
}
