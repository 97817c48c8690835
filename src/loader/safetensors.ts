/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {...}}, then the data;
 * offsets are relative to the end of the header. Everything is checked against the file size.
 */
import type { Matrix } from './types.ts';
import { BinaryFile, fileError, need, utf8Text } from './util.ts';
import { firstNonFinite, packedMatrix } from './quant.ts';

export type SafeDtype = 'F32' | 'F16' | 'BF16';

const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};

export interface SafeTensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offset in the file. */
  offset: number;
  count: number;
  file: BinaryFile;
}

/** Parse the header of an opened safetensors file. */
export async function readSafetensorsHeader(f: BinaryFile): Promise<Map<string, SafeTensorInfo>> {
  const path = f.path;
  need(f.size >= 8, path, `truncated safetensors file (${f.size} bytes)`);
  const lenBytes = await f.bytes(0, 8, 'header length');
  const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
  need(n >= 2n && n <= 100_000_000n && 8n + n <= BigInt(f.size), path, `bad safetensors header length ${n} (file has ${f.size} bytes): truncated or not a safetensors file`);
  const headerLen = Number(n);
  const text = utf8Text(path, await f.bytes(8, headerLen, 'safetensors header'), 'safetensors header');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw fileError(path, `broken safetensors header JSON (${(e as Error).message})`);
  }
  need(header && typeof header === 'object' && !Array.isArray(header), path, 'safetensors header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataBytes = f.size - dataStart;
  const out = new Map<string, SafeTensorInfo>();
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    need(t && typeof t === 'object', path, `tensor ${name}: bad header entry`);
    need(typeof t.dtype === 'string' && Object.hasOwn(DTYPE_BYTES, t.dtype), path, `tensor ${name}: unknown dtype ${JSON.stringify(t.dtype)}`);
    need(
      Array.isArray(t.shape) && t.shape.length <= 8 && t.shape.every((d) => Number.isSafeInteger(d) && d >= 0 && d <= 2 ** 31),
      path,
      `tensor ${name}: bad shape ${JSON.stringify(t.shape)}`,
    );
    const shape = t.shape as number[];
    const off = t.data_offsets;
    need(
      Array.isArray(off) && off.length === 2 && off.every((x) => Number.isSafeInteger(x) && x >= 0) && off[0] <= off[1],
      path,
      `tensor ${name}: bad data_offsets ${JSON.stringify(off)}`,
    );
    const [begin, end] = off as [number, number];
    need(end <= dataBytes, path, `tensor ${name}: data_offsets [${begin}, ${end}] lie beyond the end of the file (${dataBytes} data bytes): truncated or corrupt`);
    let count = 1;
    for (const d of shape) count *= d;
    need(
      count * DTYPE_BYTES[t.dtype]! === end - begin,
      path,
      `tensor ${name}: shape [${shape.join(', ')}] ${t.dtype} needs ${count * DTYPE_BYTES[t.dtype]!} bytes, data_offsets give ${end - begin}`,
    );
    out.set(name, { name, dtype: t.dtype, shape, offset: dataStart + begin, count, file: f });
  }
  return out;
}

/** Read tensor `t` as float32, checking its shape and finiteness. */
export async function readSafeTensor(t: SafeTensorInfo, shape: number[]): Promise<Float32Array> {
  const path = t.file.path;
  need(
    t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]),
    path,
    `tensor ${t.name} has shape [${t.shape.join(', ')}], the config implies [${shape.join(', ')}]`,
  );
  need(t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16', path, `tensor ${t.name} has unsupported dtype ${t.dtype} (F32, F16 or BF16 expected)`);
  return t.file.tensor(t.offset, t.count, t.dtype, t.name);
}

/**
 * Read matrix `t` [rows, cols]: F32 as float32, F16 / BF16 kept 16-bit (a PackedMatrix of the
 * file's little-endian bytes), checked finite.
 */
export async function readSafeMatrix(t: SafeTensorInfo, rows: number, cols: number): Promise<Matrix> {
  if (t.dtype !== 'F16' && t.dtype !== 'BF16') return readSafeTensor(t, [rows, cols]);
  const path = t.file.path;
  need(
    t.shape.length === 2 && t.shape[0] === rows && t.shape[1] === cols,
    path,
    `tensor ${t.name} has shape [${t.shape.join(', ')}], the config implies [${rows}, ${cols}]`,
  );
  const bytes = await t.file.bytes(t.offset, t.count * 2, `tensor ${t.name}`);
  const type = t.dtype === 'F16' ? 'f16' : 'bf16';
  const bad = firstNonFinite(type, bytes);
  need(bad < 0, path, `tensor ${t.name} holds NaN or an infinity at element ${bad}`);
  return packedMatrix(type, rows, cols, bytes);
}

/** Serialize float32 tensors as a safetensors file body: returns the header bytes and the layout. */
export function safetensorsHeader(
  tensors: { name: string; shape: number[]; data: Float32Array }[],
  metadata: Record<string, string> = { format: 'pt' },
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const t of tensors) {
    const bytes = t.data.length * 4;
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}
