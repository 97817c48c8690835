/**
 * GGUF output (`kloop convert --out X.gguf --type T`): per-tensor types as llama.cpp's quantizer
 * picks them, a round trip through kloop's own loader, and llama.cpp (node-llama-cpp, an
 * optional dependency) reading the file and continuing a prompt exactly as kloop does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/loader/index.ts';
import { GGUF_OUT_TYPES, convertToGguf, ggufTensorType } from '../../src/loader/gguf-write.ts';
import { dequantize, matrixType, typeSummary } from '../../src/loader/quant.ts';
import type { LoadedModel, Matrix } from '../../src/loader/types.ts';
import { KloopError } from '../../src/errors.ts';
import { convertCommand } from '../../src/cli/convert.ts';
import { llamaCppOrSkip, llamaGreedy, referenceGreedy } from '../helpers/llama.ts';
import { modelsDir } from '../helpers/paths.ts';

const binPath = path.join(modelsDir, 'stories260K', 'stories260K.bin');
let tmp: string;
let bin: LoadedModel;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kloop-gguf-out-'));
  bin = await loadModel(binPath);
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const named = (m: LoadedModel): [string, Matrix][] => [
  ['token_embd', m.weights.tokEmb],
  ...m.weights.layers.flatMap((l, i) => ([['attn_q', l.wq], ['attn_k', l.wk], ['attn_v', l.wv], ['attn_output', l.wo], ['ffn_gate', l.w1], ['ffn_down', l.w2], ['ffn_up', l.w3]] as const).map(
    ([n, w]): [string, Matrix] => [`blk.${i}.${n}`, w],
  )),
];

/** RMS of (a - b) relative to the RMS of b. */
function rel(a: Float32Array, b: Float32Array): number {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d / n);
}

describe('per-tensor types (llama-quant.cpp rules)', () => {
  const role = (name: string, cols: number, extra: { classifier?: boolean; layer?: number; nLayers?: number } = {}) => ({
    name, cols, classifier: extra.classifier ?? false, layer: extra.layer, nLayers: extra.nLayers ?? 5,
  });
  it('the classifier gets Q6_K, or Q8_0 when the type is Q8_0 or its rows do not fit', () => {
    expect(ggufTensorType('q4_0', role('output.weight', 512, { classifier: true }))).toBe('q6_k');
    expect(ggufTensorType('q4_k', role('output.weight', 512, { classifier: true }))).toBe('q6_k');
    expect(ggufTensorType('q8_0', role('output.weight', 512, { classifier: true }))).toBe('q8_0');
    expect(ggufTensorType('q4_0', role('output.weight', 64, { classifier: true }))).toBe('q8_0'); // Q6_K -> Q8_0
    expect(ggufTensorType('q4_0', role('token_embd.weight', 64, { classifier: true }))).toBe('q8_0'); // tied
    expect(ggufTensorType('q4_0', role('token_embd.weight', 64))).toBe('q4_0');
    expect(ggufTensorType('f16', role('output.weight', 64, { classifier: true }))).toBe('f16');
    expect(ggufTensorType('f32', role('output.weight', 64, { classifier: true }))).toBe('f32');
  });
  it('fallbacks for rows that are not a multiple of the block', () => {
    expect(ggufTensorType('q4_k', role('blk.0.attn_q.weight', 64))).toBe('q5_0');
    expect(ggufTensorType('q6_k', role('blk.0.attn_q.weight', 64))).toBe('q8_0');
    expect(ggufTensorType('q4_0', role('blk.0.ffn_down.weight', 172))).toBe('f16');
    expect(ggufTensorType('q8_0', role('blk.0.ffn_down.weight', 172))).toBe('f16');
    expect(ggufTensorType('q4_k', role('blk.1.ffn_down.weight', 172, { layer: 1 }))).toBe('f16');
    expect(ggufTensorType('q4_k', role('blk.0.attn_q.weight', 512))).toBe('q4_k');
  });
  it('q4_k is the Q4_K_M mix: attn_v and ffn_down of use_more_bits layers get Q6_K', () => {
    // 8 layers: use_more_bits picks layers 0, 7 (first / last eighth) and 3, 6 ((i - 1) % 3 == 2).
    const more = [...Array(8).keys()].filter((i) => ggufTensorType('q4_k', role(`blk.${i}.attn_v.weight`, 512, { layer: i, nLayers: 8 })) === 'q6_k');
    expect(more).toEqual([0, 3, 6, 7]);
    expect(ggufTensorType('q4_k', role('blk.3.ffn_down.weight', 1024, { layer: 3, nLayers: 8 }))).toBe('q6_k');
    expect(ggufTensorType('q4_k', role('blk.2.ffn_down.weight', 1024, { layer: 2, nLayers: 8 }))).toBe('q4_k');
    expect(ggufTensorType('q4_k', role('blk.0.ffn_down.weight', 1024, { layer: 0, nLayers: 1 }))).toBe('q6_k');
  });
  it('a bad type is a clear error', async () => {
    await expect(convertToGguf(bin, path.join(tmp, 'bad.gguf'), 'q5_1' as never)).rejects.toThrow(KloopError);
    await expect(convertToGguf(bin, path.join(tmp, 'bad.gguf'), 'q5_1' as never)).rejects.toThrow(/--type: unknown type "q5_1" \(one of f32, f16, q8_0, q4_0, q4_k, q6_k\)/);
  });
});

describe('kloop convert --type', () => {
  const run = async (...argv: string[]) => {
    let err = '';
    const code = await convertCommand(argv, { out: () => {}, err: (t) => void (err += t) });
    return { code, err };
  };
  it('writes GGUF for --out X.gguf and reports the type mix and errors', async () => {
    const out = path.join(tmp, 'cli-q4_0.gguf');
    const r = await run('--model', binPath, '--out', out, '--type', 'q4_0');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/wrote .*cli-q4_0\.gguf \(GGUF, q4_0, \d+ bytes; matrices q8_0 x 1 \(RMS error up to [\d.]+%\), q4_0 x 30 .*f16 x 5/);
    expect(typeSummary(named(await loadModel(out)).map((x) => x[1]))).toBe('q8_0 x 1, q4_0 x 30, f16 x 5');
  });
  it('a bad --type, or --type without GGUF output, is a clear error', async () => {
    await expect(run('--model', binPath, '--out', path.join(tmp, 'x.gguf'), '--type', 'Q4_0x')).rejects.toThrow(/--type: unknown type "Q4_0x" \(one of f32, f16, q8_0, q4_0, q4_k, q6_k\)/);
    await expect(run('--model', binPath, '--out', path.join(tmp, 'dir'), '--type', 'q8_0')).rejects.toThrow(/--type: only GGUF output/);
  });
  it('a model without a sentencepiece vocabulary cannot become GGUF', async () => {
    const dir = path.join(tmp, 'hf');
    await run('--model', binPath, '--out', dir);
    await expect(run('--model', dir, '--out', path.join(tmp, 'hf.gguf'))).rejects.toThrow(/GGUF output needs a sentencepiece vocabulary/);
  });
});

describe('round trip: convert -> load', () => {
  // Largest RMS relative error of any matrix, per type (the quantizers' error on stories260K).
  const BOUND: Record<string, number> = { f32: 0, f16: 1e-3, q8_0: 0.01, q4_0: 0.12, q4_k: 0.12, q6_k: 0.01 };
  it.each(GGUF_OUT_TYPES.map((t) => [t]))('%s', async (type) => {
    const out = path.join(tmp, `stories260K-${type}.gguf`);
    await convertToGguf(bin, out, type);
    const m = await loadModel(out);
    expect(m.format).toBe('gguf');
    expect(m.config).toEqual({ ...bin.config });
    expect(m.tokenizer.encode('Once upon a time')).toEqual(bin.tokenizer.encode('Once upon a time'));
    expect(Array.from(m.weights.finalNorm)).toEqual(Array.from(bin.weights.finalNorm));
    expect(Array.from(m.weights.layers[2]!.ffnNorm)).toEqual(Array.from(bin.weights.layers[2]!.ffnNorm));
    let worst = 0;
    const a = named(m), b = named(bin);
    for (let i = 0; i < a.length; i++) {
      const e = rel(dequantize(a[i]![1]), dequantize(b[i]![1]));
      expect(e, a[i]![0]).toBeLessThanOrEqual(BOUND[type]!);
      worst = Math.max(worst, e);
    }
    console.log(`${type}: ${typeSummary(a.map((x) => x[1]))}; largest matrix RMS relative error ${worst.toExponential(2)}`);
    if (type === 'q8_0' || type === 'q6_k') {
      // 64 columns fit Q8_0 blocks but not Q6_K's 256: both give Q8_0, ffn_down (172) F16.
      expect(matrixType(m.weights.tokEmb)).toBe('q8_0');
      expect(matrixType(m.weights.layers[0]!.w2)).toBe('f16');
      expect(matrixType(m.weights.layers[0]!.wq)).toBe('q8_0');
    }
  });
});

describe('llama.cpp reads kloop convert --type q8_0', () => {
  it('the same greedy tokens in llama.cpp and in the reference executor: stories260K q8_0 (40), a q4_k file of real K-quant blocks (16)', async (ctx) => {
    const nlc = await llamaCppOrSkip(ctx);
    if (!nlc) return;
    const out = path.join(tmp, 'stories260K-q8_0-llama.gguf');
    await convertToGguf(bin, out, 'q8_0');
    const steps = 40;
    const ours = await loadModel(out);
    const prompt = ours.tokenizer.encode('Once upon a time');
    const kloop = referenceGreedy(ours, prompt, steps);

    const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: out });
    try {
      // llama.cpp tokenizes the prompt as kloop does (the vocabulary was written right).
      expect([ours.config.bosId, ...model.tokenize('Once upon a time')]).toEqual(prompt);
      const theirs = await llamaGreedy(model, prompt, steps, 128);
      console.log(`llama.cpp: ${theirs.join(' ')}\nkloop:     ${kloop.join(' ')}\ntext: ${JSON.stringify(model.detokenize(theirs as never))}`);
      expect(theirs).toEqual(kloop);

      // Real K-quant blocks: the synthetic dim-512 model converted to q4_k (Q4_K and Q6_K tensors).
      const syn = path.join(tmp, 'synthetic-q4_k.gguf');
      const src = await loadModel(path.join(modelsDir, 'quant', 'synthetic-k512-Q6_K.gguf'));
      // From float32, so that every matrix goes through kloop's Q4_K / Q6_K quantizers.
      const w = src.weights;
      w.tokEmb = dequantize(w.tokEmb);
      w.wcls = dequantize(w.wcls);
      for (const l of w.layers) for (const k of ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const) l[k] = dequantize(l[k]);
      const report = await convertToGguf(src, syn, 'q4_k');
      expect([...new Set(report.tensors.map((t) => t.type))].sort()).toEqual(['q4_k', 'q6_k']);
      console.log(`synthetic q4_k: ${report.tensors.map((t) => `${t.name} ${t.type} ${t.rel.toExponential(1)}`).join(', ')}`);
      const ours2 = referenceGreedy(await loadModel(syn), prompt, 16);
      const model2 = await llama.loadModel({ modelPath: syn });
      const theirs2 = await llamaGreedy(model2, prompt, 16, 64);
      await model2.dispose();
      console.log(`synthetic q4_k, llama.cpp: ${theirs2.join(' ')}\nsynthetic q4_k, kloop:     ${ours2.join(' ')}`);
      expect(theirs2).toEqual(ours2);
    } finally {
      await model.dispose();
      await llama.dispose();
    }
  }, 60_000);
});
