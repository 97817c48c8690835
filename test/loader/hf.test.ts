import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { modelsDir } from '../helpers/paths.ts';
import { convertToHF, loadModel } from '../../src/loader/index.ts';
import { permuteRows, unpermuteRows } from '../../src/loader/permute.ts';
import { dequantize, matrixBytes, matrixType } from '../../src/loader/quant.ts';
import { safetensorsHeader } from '../../src/loader/safetensors.ts';
import { KloopError } from '../../src/errors.ts';
import { expectKloopError, expectSameF32 } from './helpers.ts';
import type { LoadedModel } from '../../src/loader/types.ts';

const binPath = path.join(modelsDir, 'stories260K/stories260K.bin');
const tmp = mkdtempSync(path.join(tmpdir(), 'kloop-hf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


const LAYER_KEYS = ['attnNorm', 'wq', 'wk', 'wv', 'wo', 'ffnNorm', 'w1', 'w2', 'w3'] as const;

describe('q/k RoPE permutation', () => {
  it('matches the view/transpose of convert_llama_weights_to_hf.py', () => {
    // HF = w.view(nHeads, headDim/2, 2, cols).transpose(1, 2).reshape(rows, cols)
    const nHeads = 3, headDim = 6, cols = 2;
    const w = Float32Array.from({ length: nHeads * headDim * cols }, (_, i) => i);
    const hf = permuteRows(w, nHeads, headDim, cols);
    const half = headDim / 2;
    for (let h = 0; h < nHeads; h++)
      for (let r = 0; r < 2; r++)
        for (let i = 0; i < half; i++)
          for (let c = 0; c < cols; c++)
            expect(hf[((h * 2 + r) * half + i) * cols + c]).toBe(w[((h * half + i) * 2 + r) * cols + c]);
    expect(unpermuteRows(hf, nHeads, headDim, cols)).toEqual(w);
  });
});

describe('Hugging Face folders', () => {
  let bin: LoadedModel;
  const dir = path.join(tmp, 'stories260K-hf');
  beforeAll(async () => {
    bin = await loadModel(binPath);
    await convertToHF(bin, dir);
  });

  it('convert writes config.json, model.safetensors and tokenizer.json', () => {
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 5,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      head_dim: 8,
      vocab_size: 512,
      max_position_embeddings: 512,
      tie_word_embeddings: true,
      bos_token_id: 1,
      eos_token_id: 2,
    });
    expect(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')).toBe(bin.tokenizer.toJSON());
  });

  it('stores wq/wk in rotate_half order and loads them back equal', async () => {
    const raw = readFileSync(path.join(dir, 'model.safetensors'));
    const n = Number(raw.readBigUInt64LE(0));
    const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8'));
    const q = header['model.layers.0.self_attn.q_proj.weight'];
    expect(q.shape).toEqual([64, 64]);
    expect(header['lm_head.weight']).toBeUndefined();
    const stored = new Float32Array(raw.buffer.slice(raw.byteOffset + 8 + n + q.data_offsets[0], raw.byteOffset + 8 + n + q.data_offsets[1]));
    // HF row 1 (head 0) is llama2.c row 2; HF row 4 is llama2.c row 1 (head size 8).
    expect(stored.subarray(64, 128)).toEqual((bin.weights.layers[0]!.wq as Float32Array).subarray(128, 192));
    expect(stored.subarray(256, 320)).toEqual((bin.weights.layers[0]!.wq as Float32Array).subarray(64, 128));

    const hf = await loadModel(dir);
    expect(hf.format).toBe('hf');
    expect(hf.config).toEqual(bin.config);
    expectSameF32(hf.weights.tokEmb, bin.weights.tokEmb);
    expect(hf.weights.wcls).toBe(hf.weights.tokEmb);
    expectSameF32(hf.weights.finalNorm, bin.weights.finalNorm);
    for (let l = 0; l < 5; l++)
      for (const k of LAYER_KEYS) expectSameF32(hf.weights.layers[l]![k], bin.weights.layers[l]![k], `layer ${l} ${k}`);
    expect(hf.tokenizer.encode('Lily said, "Let\'s play!"')).toEqual(bin.tokenizer.encode('Lily said, "Let\'s play!"'));
    expect(hf.tokenizer.decode([1, 403, 407, 261, 378])).toBe('Once upon a time');
  });

  it('round-trips an untied classifier, attention biases and several eos ids', async () => {
    const m: LoadedModel = structuredClone({ ...bin, tokenizer: undefined }) as unknown as LoadedModel;
    m.tokenizer = bin.tokenizer;
    m.config = { ...bin.config, tiedEmbeddings: false, attentionBias: true, eosIds: [2, 0] };
    m.weights.wcls = (m.weights.tokEmb as Float32Array).map((v) => v * 2);
    m.weights.layers.forEach((l, i) => {
      l.bq = Float32Array.from({ length: 64 }, (_, j) => i + j / 64);
      l.bk = Float32Array.from({ length: 32 }, (_, j) => -i - j / 32);
      l.bv = Float32Array.from({ length: 32 }, (_, j) => j);
    });
    const out = path.join(tmp, 'qwen-like');
    await convertToHF(m, out);
    expect(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).model_type).toBe('qwen2');
    const back = await loadModel(out);
    expect(back.config).toEqual(m.config);
    expectSameF32(back.weights.wcls, m.weights.wcls);
    for (let l = 0; l < 5; l++)
      for (const k of [...LAYER_KEYS, 'bq', 'bk', 'bv'] as const)
        expectSameF32(back.weights.layers[l]![k], m.weights.layers[l]![k], `layer ${l} ${k}`);
  });

  it('reads F16 and BF16 tensors and sharded checkpoints', async () => {
    const out = path.join(tmp, 'sharded');
    cpSync(dir, out, { recursive: true });
    const raw = readFileSync(path.join(out, 'model.safetensors'));
    const n = Number(raw.readBigUInt64LE(0));
    const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    delete (header as Record<string, unknown>).__metadata__;
    const names = Object.keys(header);
    const tensor = (name: string) => {
      const [a, b] = header[name]!.data_offsets;
      return new Float32Array(raw.buffer.slice(raw.byteOffset + 8 + n + a, raw.byteOffset + 8 + n + b));
    };
    // Shard 1: the embedding as BF16 (exact for values rounded to bf16); shard 2: the rest.
    const emb = tensor('model.embed_tokens.weight');
    const u = new Uint32Array(emb.buffer);
    const bf = new Uint16Array(emb.length);
    for (let i = 0; i < u.length; i++) {
      bf[i] = u[i]! >>> 16;
      u[i] = (u[i]! >>> 16) << 16;
    }
    const j1 = JSON.stringify({ 'model.embed_tokens.weight': { dtype: 'BF16', shape: [512, 64], data_offsets: [0, bf.byteLength] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(j1)));
    writeFileSync(path.join(out, 'part-1.safetensors'), Buffer.concat([len, Buffer.from(j1), Buffer.from(bf.buffer)]));
    // The final norm as F16: 1.0 and 0.5 are exact.
    const rest = names.filter((x) => x !== 'model.embed_tokens.weight' && x !== 'model.norm.weight');
    writeFileSync(
      path.join(out, 'part-2.safetensors'),
      Buffer.concat([safetensorsHeader(rest.map((x) => ({ name: x, shape: header[x]!.shape, data: tensor(x) }))), ...rest.map((x) => Buffer.from(tensor(x).buffer))]),
    );
    const normF16 = new Uint16Array(64).map((_, i) => (i % 2 ? 0x3c00 : 0x3800));
    const j3 = JSON.stringify({ 'model.norm.weight': { dtype: 'F16', shape: [64], data_offsets: [0, 128] } });
    const len3 = Buffer.alloc(8);
    len3.writeBigUInt64LE(BigInt(Buffer.byteLength(j3)));
    writeFileSync(path.join(out, 'part-3.safetensors'), Buffer.concat([len3, Buffer.from(j3), Buffer.from(normF16.buffer)]));
    const weightMap: Record<string, string> = { 'model.embed_tokens.weight': 'part-1.safetensors', 'model.norm.weight': 'part-3.safetensors' };
    for (const x of rest) weightMap[x] = 'part-2.safetensors';
    writeFileSync(path.join(out, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    unlinkSync(path.join(out, 'model.safetensors'));

    const m = await loadModel(out);
    // BF16 matrices stay 16-bit; they decode to the values written.
    expect(matrixType(m.weights.tokEmb)).toBe('bf16');
    expect(matrixBytes(m.weights.tokEmb)).toBe(bf.byteLength);
    expectSameF32(dequantize(m.weights.tokEmb), emb);
    expect(Array.from(m.weights.finalNorm.subarray(0, 4))).toEqual([0.5, 1, 0.5, 1]);
    expectSameF32(m.weights.layers[3]!.wq, bin.weights.layers[3]!.wq);
  });
});

describe('Hugging Face errors', () => {
  let n = 0;
  const base = path.join(tmp, 'base');
  beforeAll(async () => {
    await convertToHF(await loadModel(binPath), base);
  });
  const variant = (edit: (dir: string) => void): string => {
    const d = path.join(tmp, `bad${n++}`);
    cpSync(base, d, { recursive: true });
    edit(d);
    return d;
  };
  const editConfig = (f: (c: Record<string, unknown>) => void) => (d: string) => {
    const p = path.join(d, 'config.json');
    const c = JSON.parse(readFileSync(p, 'utf8'));
    f(c);
    writeFileSync(p, JSON.stringify(c));
  };

  it('names config.json and the key of unsupported options', async () => {
    await expectKloopError(loadModel(variant(editConfig((c) => (c.rope_scaling = { type: 'linear', factor: 2 })))), /config\.json: rope_scaling: unsupported/);
    await expectKloopError(loadModel(variant(editConfig((c) => (c.hidden_act = 'gelu')))), /config\.json: hidden_act: unsupported activation "gelu"/);
    await expectKloopError(loadModel(variant(editConfig((c) => (c.model_type = 'gpt_neox')))), /config\.json: model_type: unsupported model type "gpt_neox"/);
    await expectKloopError(loadModel(variant(editConfig((c) => (c.num_key_value_heads = 3)))), /config\.json: n_heads 8 is not a multiple of n_kv_heads 3/);
    await expectKloopError(loadModel(variant(editConfig((c) => (c.hidden_size = -1)))), /config\.json: bad hidden_size -1/);
  });

  it('rejects broken JSON and a missing tokenizer', async () => {
    await expectKloopError(loadModel(variant((d) => writeFileSync(path.join(d, 'config.json'), '{"model_type": "llama",'))), /config\.json: broken JSON/);
    await expectKloopError(loadModel(variant((d) => unlinkSync(path.join(d, 'tokenizer.json')))), /bad\d+: missing tokenizer\.json/);
    await expectKloopError(loadModel(variant((d) => writeFileSync(path.join(d, 'tokenizer.json'), '[1,'))), /tokenizer\.json: broken JSON/);
  });

  it('rejects a shape disagreeing with the config', async () => {
    await expectKloopError(
      loadModel(variant(editConfig((c) => (c.intermediate_size = 100)))),
      /model\.safetensors: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[172, 64\], the config implies \[100, 64\]/,
    );
  });

  it('rejects truncated data, bad offsets and unknown dtypes', async () => {
    const st = (d: string) => path.join(d, 'model.safetensors');
    await expectKloopError(loadModel(variant((d) => writeFileSync(st(d), readFileSync(st(d)).subarray(0, 5000)))), /model\.safetensors: tensor .* beyond the end of the file/);
    await expectKloopError(loadModel(variant((d) => writeFileSync(st(d), readFileSync(st(d)).subarray(0, 100)))), /model\.safetensors: bad safetensors header length/);
    const rewrite = (f: (s: string) => string) => (d: string) => {
      const raw = readFileSync(st(d));
      const n = Number(raw.readBigUInt64LE(0));
      const text = f(raw.subarray(8, 8 + n).toString('utf8'));
      expect(Buffer.byteLength(text)).toBe(n);
      writeFileSync(st(d), Buffer.concat([raw.subarray(0, 8), Buffer.from(text), raw.subarray(8 + n)]));
    };
    await expectKloopError(loadModel(variant(rewrite((s) => s.replace('"F32"', '"X32"')))), /model\.safetensors: tensor model\.embed_tokens\.weight: unknown dtype "X32"/);
    await expectKloopError(loadModel(variant(rewrite((s) => s.replace('"data_offsets":[0,131072]', '"data_offsets":[0,131076]')))), /needs 131072 bytes, data_offsets give 131076/);
    await expectKloopError(loadModel(variant(rewrite((s) => s.replace('{"__metadata__"', '["__metadata__"')))), /model\.safetensors: broken safetensors header JSON/);
  });
});

describe('half-precision conversion', () => {
  it('converts F16 and BF16 exactly', async () => {
    const { f16ToF32, bf16ToF32 } = await import('../../src/loader/util.ts');
    const f16 = new Uint16Array([0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x3555]);
    expect(Array.from(f16ToF32(new Uint8Array(f16.buffer)))).toEqual([0, -0, 1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, Math.fround(0.333251953125)]);
    const bf = new Uint16Array([0x3f80, 0xc040, 0x0000, 0x4049]);
    expect(Array.from(bf16ToF32(new Uint8Array(bf.buffer)))).toEqual([1, -3, 0, 3.140625]);
  });
});
