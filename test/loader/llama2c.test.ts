import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { modelsDir } from '../helpers/paths.ts';
import { loadModel } from '../../src/loader/index.ts';
import { KloopError } from '../../src/errors.ts';
import { expectKloopError, expectSameF32 } from './helpers.ts';

const stories = path.join(modelsDir, 'stories260K/stories260K.bin');
const aidreams = path.join(modelsDir, 'aidreams260K/aidreams260K.bin');
const tmp = mkdtempSync(path.join(tmpdir(), 'kloop-l2c-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


describe('llama2.c checkpoints', () => {
  it('loads stories260K with its tokenizer', async () => {
    const m = await loadModel(stories);
    expect(m.format).toBe('llama2c');
    expect(m.name).toBe('stories260K');
    expect(m.config).toEqual({
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      seqLen: 512,
      normEps: 1e-5,
      ropeTheta: 10000,
      attentionBias: false,
      tiedEmbeddings: true,
      bosId: 1,
      eosId: 2,
    });
    const w = m.weights as unknown as { tokEmb: Float32Array; wcls: Float32Array; finalNorm: Float32Array; layers: Record<string, Float32Array>[] };
    expect(w.wcls).toBe(w.tokEmb);
    expect(w.tokEmb.length).toBe(512 * 64);
    expect(w.layers).toHaveLength(5);
    expect(w.layers[0]!.wk.length).toBe(32 * 64);
    expect(w.layers[4]!.w2.length).toBe(64 * 172);
    // First weights of the file, straight after the 28-byte header.
    const raw = readFileSync(stories);
    expect(w.tokEmb[0]).toBe(raw.readFloatLE(28));
    expect(w.tokEmb[1]).toBe(raw.readFloatLE(32));
    // rms_final sits just before the freq_cis tables (512 x 4 x 2 floats) at the end.
    const finalOff = raw.length - 512 * 8 * 4 - 64 * 4;
    expect(w.finalNorm[0]).toBe(raw.readFloatLE(finalOff));
    expect(w.finalNorm[63]).toBe(raw.readFloatLE(finalOff + 63 * 4));
    expect(m.tokenizer.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it('loads aidreams260K (4 layers, 4 heads, head size 16) with its own tokenizer', async () => {
    const m = await loadModel(aidreams);
    expect(m.config.nLayers).toBe(4);
    expect(m.config.nHeads).toBe(4);
    expect(m.config.nKvHeads).toBe(4);
    expect(m.config.headDim).toBe(16);
    expect(m.config.seqLen).toBe(128);
    expect(m.config.tiedEmbeddings).toBe(true);
    expect(m.tokenizer.vocabSize).toBe(512);
    // aidreams' vocabulary differs from stories260K's: id 259 is "in", not " t".
    expect(m.tokenizer.decode([259])).toBe('in');
  });

  it('takes the tokenizer from opts.tokenizer', async () => {
    const m = await loadModel(aidreams, { tokenizer: path.join(modelsDir, 'stories260K/tok512.bin') });
    expect(m.tokenizer.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it("refuses another model's larger tokenizer (llama2.c writes exactly vocab_size tokens)", async () => {
    const llama2 = path.join(modelsDir, 'llama2-tokenizer/tokenizer.bin');
    await expectKloopError(loadModel(stories, { tokenizer: llama2 }), /tokenizer\.bin: the tokenizer holds more than the model's 512 tokens \(\d+ bytes after token 511\)/);
    // One byte too many is enough.
    const dir = mkdtempSync(path.join(tmp, 'tok-'));
    const tok = path.join(dir, 'tok.bin');
    writeFileSync(tok, Buffer.concat([readFileSync(path.join(modelsDir, 'stories260K/tok512.bin')), Buffer.from([0])]));
    await expectKloopError(loadModel(stories, { tokenizer: tok }), /more than the model's 512 tokens \(1 bytes after token 511\)/);
  });

  it('reads a separate classifier when vocab_size is negative', async () => {
    const raw = readFileSync(stories);
    const dir = mkdtempSync(path.join(tmp, 'wcls-'));
    const out = Buffer.concat([raw, raw.subarray(28, 28 + 512 * 64 * 4)]);
    out.writeInt32LE(-512, 20);
    writeFileSync(path.join(dir, 'm.bin'), out);
    copyFileSync(path.join(modelsDir, 'stories260K/tok512.bin'), path.join(dir, 'tok512.bin'));
    const m = await loadModel(path.join(dir, 'm.bin'));
    expect(m.config.tiedEmbeddings).toBe(false);
    expect(m.weights.wcls).not.toBe(m.weights.tokEmb);
    expectSameF32(m.weights.wcls, m.weights.tokEmb);
  });
});

describe('llama2.c errors', () => {
  const raw = readFileSync(stories);
  let n = 0;
  function variant(mutate: (b: Buffer) => Buffer, withTok = true): string {
    const dir = path.join(tmp, `v${n++}`);
    const p = path.join(dir, 'broken260K.bin');
    mkdirSync(dir, { recursive: true });
    writeFileSync(p, mutate(Buffer.from(raw)));
    if (withTok) copyFileSync(path.join(modelsDir, 'stories260K/tok512.bin'), path.join(dir, 'tok512.bin'));
    return p;
  }

  it('names the file of a truncated checkpoint', async () => {
    const p = variant((b) => b.subarray(0, b.length - 100));
    await expectKloopError(loadModel(p), /broken260K\.bin.*truncated/);
    await expectKloopError(loadModel(variant((b) => b.subarray(0, 10))), /broken260K\.bin.*truncated/);
  });

  it('refuses bad header values before allocating', async () => {
    const set = (i: number, v: number) => (b: Buffer) => (b.writeInt32LE(v, 4 * i), b);
    await expectKloopError(loadModel(variant(set(0, 0))), /broken260K\.bin: bad dim 0/);
    await expectKloopError(loadModel(variant(set(0, -64))), /broken260K\.bin: bad dim -64/);
    await expectKloopError(loadModel(variant(set(1, 0x7fffffff))), /broken260K\.bin: bad hidden_dim/);
    await expectKloopError(loadModel(variant(set(3, 7))), /broken260K\.bin: dim 64 is not divisible by n_heads 7/);
    await expectKloopError(loadModel(variant(set(4, 3))), /broken260K\.bin: n_heads 8 is not a multiple of n_kv_heads 3/);
    await expectKloopError(loadModel(variant(set(5, 0))), /broken260K\.bin: bad vocab_size 0/);
    await expectKloopError(loadModel(variant(set(2, 1000))), /broken260K\.bin: truncated/);
    await expectKloopError(loadModel(variant(set(2, 4))), /broken260K\.bin.*trailing bytes/);
  });

  it('rejects NaN weights, naming the tensor', async () => {
    const p = variant((b) => (b.writeFloatLE(NaN, 28 + 4 * (512 * 64 + 5 * 64 + 7)), b));
    await expectKloopError(loadModel(p), /broken260K\.bin: tensor wq\[0\] holds NaN/);
  });

  it('says when the tokenizer is missing or truncated', async () => {
    await expectKloopError(loadModel(variant((b) => b, false)), /broken260K\.bin: no tokenizer found/);
    const p = variant((b) => b, false);
    const tok = readFileSync(path.join(modelsDir, 'stories260K/tok512.bin'));
    writeFileSync(path.join(path.dirname(p), 'tok512.bin'), tok.subarray(0, 3000));
    await expectKloopError(loadModel(p), /tok512\.bin: truncated tokenizer file/);
  });
});
