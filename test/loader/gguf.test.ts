import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { modelsDir } from '../helpers/paths.ts';
import { loadModel } from '../../src/loader/index.ts';
import { parseGgufHeader } from '../../src/loader/gguf.ts';
import { KloopError } from '../../src/errors.ts';
import { expectKloopError, expectSameF32 } from './helpers.ts';
import type { LoadedModel } from '../../src/loader/types.ts';

const ggufPath = path.join(modelsDir, 'stories260K/stories260K.gguf');
const binPath = path.join(modelsDir, 'stories260K/stories260K.bin');
const tmp = mkdtempSync(path.join(tmpdir(), 'kloop-gguf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


describe('GGUF stories260K', async () => {
  const g: LoadedModel = await loadModel(ggufPath);
  const b: LoadedModel = await loadModel(binPath);

  it('reads the config from the metadata', () => {
    expect(g.format).toBe('gguf');
    expect(g.name).toBe('stories260K');
    expect(g.config).toEqual({ ...b.config, seqLen: 2048, tiedEmbeddings: false });
  });

  it('has weights equal to the llama2.c checkpoint (no RoPE permutation)', () => {
    expectSameF32(g.weights.tokEmb, b.weights.tokEmb);
    expectSameF32(g.weights.finalNorm, b.weights.finalNorm);
    expectSameF32(g.weights.wcls, b.weights.wcls);
    expect(g.weights.layers).toHaveLength(5);
    for (let l = 0; l < 5; l++) {
      const gl = g.weights.layers[l]!;
      const bl = b.weights.layers[l]!;
      for (const k of ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'] as const) {
        expectSameF32(gl[k], bl[k], `layer ${l} ${k}`);
      }
    }
  });

  it('builds the same tokenizer as tok512.bin', () => {
    expect(g.tokenizer.toJSON()).toBe(b.tokenizer.toJSON());
    expect(g.tokenizer.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });
});

describe('GGUF errors', () => {
  const raw = readFileSync(ggufPath);
  let n = 0;
  const variant = (mutate: (b: Buffer) => Buffer): string => {
    const p = path.join(tmp, `broken${n++}.gguf`);
    writeFileSync(p, mutate(Buffer.from(raw)));
    return p;
  };

  it('names the file of a truncated GGUF', async () => {
    await expectKloopError(loadModel(variant((b) => b.subarray(0, b.length - 1000))), /broken\d+\.gguf: tensor .* beyond the end of the file/);
    await expectKloopError(loadModel(variant((b) => b.subarray(0, 500))), /broken\d+\.gguf: (truncated GGUF header|absurd tensor count 48 for the file size \(500 bytes\): corrupt or truncated)/);
    await expectKloopError(loadModel(variant((b) => b.subarray(0, 10))), /broken\d+\.gguf: truncated GGUF file/);
  });

  it('rejects a bad version and absurd counts', async () => {
    await expectKloopError(loadModel(variant((b) => (b.writeUInt32LE(7, 4), b))), /unsupported GGUF version 7/);
    await expectKloopError(loadModel(variant((b) => (b.writeBigUInt64LE(1n << 40n, 8), b))), /absurd tensor count/);
    await expectKloopError(loadModel(variant((b) => (b.writeBigUInt64LE(1n << 62n, 16), b))), /absurd metadata count/);
  });

  /** Byte offset just after the GGUF string `key` (u64 length + bytes) in the header. */
  const after = (key: string): number => {
    const i = raw.indexOf(Buffer.from(key, 'utf8'));
    expect(i).toBeGreaterThan(0);
    expect(Number(raw.readBigUInt64LE(i - 8))).toBe(Buffer.byteLength(key));
    return i + Buffer.byteLength(key);
  };

  it('rejects a shape disagreeing with the metadata', async () => {
    const p = variant((b) => {
      const o = after('llama.feed_forward_length');
      expect(b.readUInt32LE(o)).toBe(4); // uint32 value type
      b.writeUInt32LE(100, o + 4);
      return b;
    });
    await expectKloopError(loadModel(p), /broken\d+\.gguf: tensor blk\.0\.ffn_gate\.weight has shape \[64, 172\], the config implies \[64, 100\]/);
  });

  it('rejects tensor types it does not read, by name', async () => {
    const p = variant((b) => {
      const o = after('token_embd.weight');
      expect(b.readUInt32LE(o)).toBe(2); // n_dims
      b.writeUInt32LE(10, o + 4 + 16); // type: Q2_K
      return b;
    });
    await expectKloopError(
      loadModel(p),
      /tensor token_embd\.weight has unsupported type Q2_K \(kloop reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K\)/,
    );
  });

  it('rejects a missing tokenizer', async () => {
    const p = variant((b) => {
      const o = after('tokenizer.ggml.model');
      b.write('XXXXXXXXX.ggml.model', o - 20, 'utf8');
      return b;
    });
    await expectKloopError(loadModel(p), /missing metadata tokenizer\.ggml\.model/);
  });

  it('survives every single-byte corruption of the header with a KloopError or a valid load', async () => {
    const h = parseGgufHeader(ggufPath, raw, raw.length);
    for (let i = 0; i < h.dataOffset; i += 97) {
      const buf = Buffer.from(raw);
      buf[i] = buf[i]! ^ 0xff;
      try {
        parseGgufHeader('x.gguf', buf, buf.length);
      } catch (e) {
        expect(e).toBeInstanceOf(KloopError);
      }
    }
  });
});
