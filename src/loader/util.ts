/**
 * Small helpers shared by the loaders: bounded positional file reads, dtype conversion and
 * weight validation. Every problem is a one-line KloopError naming the file.
 */
import { open, stat, readFile } from './fs.ts';
import type { ModelConfig } from './types.ts';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

import { fileError, need } from './fail.ts';
export { fileError, need };

/** Model name from a path (or URL): the file name without its extension, or the folder name. */
export function modelName(path: string): string {
  return baseName(path).replace(/\.(bin|gguf|safetensors)$/i, '');
}

/** The last component of a path or URL (trailing separators ignored), like path.basename. */
export function baseName(path: string): string {
  const parts = path.replace(/[\\/]+$/, '').split(/[\\/]/);
  return parts[parts.length - 1] ?? '';
}

/** Size of a regular file, or a KloopError when it is missing or not a file. */
export async function fileSize(path: string): Promise<number> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    throw fileError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  need(st.isFile(), path, 'not a regular file');
  return st.size;
}

/** Read a whole (small) file, as a KloopError on failure. */
export async function readSmallFile(path: string, maxBytes = 1 << 30): Promise<Buffer> {
  const size = await fileSize(path);
  need(size <= maxBytes, path, `file too large (${size} bytes, at most ${maxBytes} expected)`);
  try {
    return await readFile(path);
  } catch (e) {
    throw fileError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Decode UTF-8 text, as a one-line KloopError naming `path` when the bytes are not valid UTF-8. */
export function utf8Text(path: string, bytes: Uint8Array, what = 'file'): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    throw fileError(path, `${what} is not valid UTF-8 text`);
  }
}

/** Read and parse a (small) JSON file: a KloopError when it is too large, not UTF-8 or broken. */
export async function readJsonFile(path: string, maxBytes: number): Promise<unknown> {
  return parseJson(path, utf8Text(path, await readSmallFile(path, maxBytes)));
}

/** Parse JSON text, as a one-line KloopError on failure. */
export function parseJson(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw fileError(path, `broken JSON (${(e as Error).message})`);
  }
}

/** What BinaryFile reads through: an open file (fs FileHandle) or bytes in memory. */
export interface RandomAccess {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/** A file opened for bounded positional reads. */
export class BinaryFile {
  private constructor(
    readonly path: string,
    readonly size: number,
    private readonly fh: RandomAccess,
  ) {}

  /** Bytes already in memory (a fetched URL, a dropped File), read like a file named `path`. */
  static fromBytes(path: string, data: Uint8Array | ArrayBuffer): BinaryFile {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    const mem: RandomAccess = {
      async read(buffer, offset, length, position) {
        const n = Math.max(0, Math.min(length, bytes.byteLength - position));
        buffer.set(bytes.subarray(position, position + n), offset);
        return { bytesRead: n };
      },
      async close() {},
    };
    return new BinaryFile(path, bytes.byteLength, mem);
  }

  static async open(path: string): Promise<BinaryFile> {
    const size = await fileSize(path);
    let fh: RandomAccess;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw fileError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    return new BinaryFile(path, size, fh);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  /** Fill `dst` with the bytes at [offset, offset + dst.length); the range must be inside the file. */
  async readInto(dst: Uint8Array, offset: number, what: string): Promise<void> {
    need(
      Number.isSafeInteger(offset) && offset >= 0 && offset + dst.byteLength <= this.size,
      this.path,
      `${what} lies outside the file (bytes ${offset}..${offset + dst.byteLength}, file has ${this.size}): truncated or corrupt`,
    );
    const CHUNK = 1 << 28;
    let done = 0;
    while (done < dst.byteLength) {
      const n = Math.min(CHUNK, dst.byteLength - done);
      const { bytesRead } = await this.fh.read(dst, done, n, offset + done);
      need(bytesRead > 0, this.path, `unexpected end of file while reading ${what}`);
      done += bytesRead;
    }
  }

  async bytes(offset: number, length: number, what: string): Promise<Uint8Array> {
    need(
      Number.isSafeInteger(length) && length >= 0 && offset + length <= this.size,
      this.path,
      `${what} lies outside the file (bytes ${offset}..${offset + length}, file has ${this.size}): truncated or corrupt`,
    );
    const out = new Uint8Array(length);
    await this.readInto(out, offset, what);
    return out;
  }

  /**
   * `count` float32 values of tensor `name` at `offset`, in a fresh array, checked finite.
   * The caller has already checked the range against the file size.
   */
  async f32(offset: number, count: number, name: string): Promise<Float32Array> {
    need(offset + count * 4 <= this.size, this.path, `tensor ${name} lies outside the file: truncated or corrupt`);
    const out = new Float32Array(count);
    await this.readInto(new Uint8Array(out.buffer), offset, `tensor ${name}`);
    if (!LITTLE_ENDIAN_HOST) byteSwap32(out);
    checkFinite(out, this.path, name);
    return out;
  }

  /** `count` values of dtype `dtype` (F32, F16, BF16) converted to float32 and checked finite. */
  async tensor(offset: number, count: number, dtype: 'F32' | 'F16' | 'BF16', name: string): Promise<Float32Array> {
    if (dtype === 'F32') return this.f32(offset, count, name);
    const raw = await this.bytes(offset, count * 2, `tensor ${name}`);
    const out = dtype === 'F16' ? f16ToF32(raw) : bf16ToF32(raw);
    checkFinite(out, this.path, name);
    return out;
  }
}

function byteSwap32(a: Float32Array): void {
  const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (let i = 0; i < u.length; i += 4) {
    const b0 = u[i]!, b1 = u[i + 1]!;
    u[i] = u[i + 3]!;
    u[i + 1] = u[i + 2]!;
    u[i + 2] = b1;
    u[i + 3] = b0;
  }
}

/** Throw a KloopError naming the tensor when it holds a NaN or an infinity. */
export function checkFinite(a: Float32Array, file: string, name: string): void {
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (v - v !== 0) {
      throw fileError(file, `tensor ${name} holds ${Number.isNaN(v) ? 'NaN' : 'an infinity'} at element ${i}`);
    }
  }
}

export const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    let v: number;
    if (e === 0) v = s * m * 2 ** -24;
    else if (e === 31) v = m ? NaN : s * Infinity;
    else v = s * (1 + m / 1024) * 2 ** (e - 15);
    t[h] = v;
  }
  return t;
})();

/** Little-endian IEEE half floats to float32. */
export function f16ToF32(raw: Uint8Array): Float32Array {
  const n = raw.length >> 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = F16_TABLE[raw[2 * i]! | (raw[2 * i + 1]! << 8)]!;
  return out;
}

/** Little-endian bfloat16 to float32 (the high half of a float32). */
export function bf16ToF32(raw: Uint8Array): Float32Array {
  const n = raw.length >> 1;
  const out = new Float32Array(n);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) u[i] = ((raw[2 * i]! | (raw[2 * i + 1]! << 8)) << 16) >>> 0;
  return out;
}

/** Check an integer header value lies in [min, max]. */
export function checkInt(file: string, key: string, v: unknown, min: number, max: number): number {
  need(
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max,
    file,
    `bad ${key} ${typeof v === 'number' || typeof v === 'bigint' ? String(v) : JSON.stringify(v) ?? String(v)} (expected an integer in ${min}..${max})`,
  );
  return v as number;
}

/** Limits that keep every size computation exact and refuse absurd headers before allocating. */
export const LIMITS = {
  dim: 1 << 16,
  hiddenDim: 1 << 18,
  nLayers: 1 << 10,
  nHeads: 1 << 10,
  vocabSize: 1 << 22,
  seqLen: 1 << 24,
  headDim: 1 << 12,
} as const;

/** Check the relations between config values; throws a one-line KloopError naming `file`. */
export function validateConfig(file: string, c: ModelConfig): void {
  checkInt(file, 'dim', c.dim, 1, LIMITS.dim);
  checkInt(file, 'hidden_dim', c.hiddenDim, 1, LIMITS.hiddenDim);
  checkInt(file, 'n_layers', c.nLayers, 1, LIMITS.nLayers);
  checkInt(file, 'n_heads', c.nHeads, 1, LIMITS.nHeads);
  checkInt(file, 'n_kv_heads', c.nKvHeads, 1, LIMITS.nHeads);
  checkInt(file, 'head_dim', c.headDim, 1, LIMITS.headDim);
  checkInt(file, 'vocab_size', c.vocabSize, 1, LIMITS.vocabSize);
  checkInt(file, 'seq_len', c.seqLen, 1, LIMITS.seqLen);
  need(c.nHeads % c.nKvHeads === 0, file, `n_heads ${c.nHeads} is not a multiple of n_kv_heads ${c.nKvHeads}`);
  need(c.headDim % 2 === 0, file, `head size ${c.headDim} is odd (RoPE rotates pairs)`);
  need(Number.isFinite(c.normEps) && c.normEps > 0 && c.normEps < 1, file, `bad rms norm epsilon ${c.normEps}`);
  need(Number.isFinite(c.ropeTheta) && c.ropeTheta > 1, file, `bad rope theta ${c.ropeTheta}`);
  for (const [k, v] of [['bos', c.bosId], ['eos', c.eosId]] as const) {
    need(Number.isInteger(v) && v >= -1 && v < c.vocabSize, file, `bad ${k} token id ${v} (vocab size ${c.vocabSize})`);
  }
}
