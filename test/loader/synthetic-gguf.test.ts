/**
 * `kloop convert --shape NAME --type T --out X.gguf`: a real-shaped synthetic model written as a
 * GGUF file, with its blocks generated in each tensor's type (no requantization) and a
 * placeholder vocabulary, so that kloop and llama.cpp can be benchmarked on the same file. The
 * file round-trips exactly through kloop's loader, and llama.cpp reads it and continues it as the
 * reference executor does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCommand } from '../../src/cli/convert.ts';
import { ReferenceExecutor } from '../../src/engine/reference.ts';
import { KloopError } from '../../src/errors.ts';
import { ggufTensorType } from '../../src/loader/gguf-write.ts';
import { loadModel } from '../../src/loader/index.ts';
import { matrixType, typeSummary } from '../../src/loader/quant.ts';
import { SYNTHETIC_SHAPES, syntheticModel, syntheticVocab } from '../../src/loader/synthetic.ts';
import type { LoadedModel, Matrix } from '../../src/loader/types.ts';
import { llamaCppOrSkip, llamaGreedy, referenceGreedy } from '../helpers/llama.ts';

let tmp: string;
const io = () => {
  const err: string[] = [];
  return { err, io: { out: () => undefined, err: (s: string) => void err.push(s) } };
};
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kloop-shape-gguf-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const bytesOf = (m: Matrix): Uint8Array => (m instanceof Float32Array ? new Uint8Array(m.buffer, m.byteOffset, m.byteLength) : m.data);

describe('syntheticVocab', () => {
  it('control, byte and placeholder pieces', () => {
    const v = syntheticVocab(300);
    expect(v.pieces.length).toBe(300);
    expect(v.pieces.slice(0, 3)).toEqual(['<unk>', '<s>', '</s>']);
    expect(v.pieces[3 + 0x41]).toBe('<0x41>');
    expect(v.pieces[299]).toBe('\u2581w299');
    expect(new Set(v.pieces).size).toBe(300);
    expect([v.bosId, v.eosId, v.unkId]).toEqual([1, 2, 0]);
  });
  it('fewer pieces than the control and byte pieces is a clear error', () => {
    expect(() => syntheticVocab(100)).toThrow(/259/);
  });
});

describe('kloop convert --shape', () => {
  let file: string;
  let loaded: LoadedModel;
  beforeAll(async () => {
    file = path.join(tmp, 'stories15M-q4_0.gguf');
    const { io: o, err } = io();
    expect(await convertCommand(['--shape', 'stories15M', '--type', 'q4_0', '--seed', '7', '--out', file], o)).toBe(0);
    expect(err.join('')).toMatch(/q4_0 x 42/);
    loaded = await loadModel(file);
  });

  it('writes the shape with llama.cpp\'s per-tensor types, and every block round-trips exactly', () => {
    const s = SYNTHETIC_SHAPES.stories15M!;
    expect(loaded.config).toMatchObject({ dim: s.dim, hiddenDim: s.hiddenDim, nLayers: s.nLayers, nHeads: s.nHeads, vocabSize: s.vocabSize });
    // 288 columns do not fit Q6_K's 256-value blocks: the tied classifier falls back to Q8_0.
    expect(typeSummary([loaded.weights.tokEmb])).toBe('q8_0 x 1');
    expect(matrixType(loaded.weights.tokEmb)).toBe(ggufTensorType('q4_0', { name: 'token_embd.weight', cols: s.dim, classifier: true, nLayers: s.nLayers }));
    expect(matrixType(loaded.weights.layers[3]!.w2)).toBe('q4_0');
    const mem = syntheticModel('stories15M', 7, 'q4_0', { pick: (r) => ggufTensorType('q4_0', { ...r, nLayers: s.nLayers }) });
    expect(bytesOf(loaded.weights.tokEmb)).toEqual(bytesOf(mem.weights.tokEmb));
    for (const k of ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const) expect(bytesOf(loaded.weights.layers[5]![k])).toEqual(bytesOf(mem.weights.layers[5]![k]));
    expect(Array.from(loaded.weights.finalNorm)).toEqual(Array.from(mem.weights.finalNorm));
    // The placeholder vocabulary is a working tokenizer (its pieces decode; text means nothing).
    expect(loaded.tokenizer.decode([300, 301]).trim()).toBe('w300 w301');
  });

  it('the same logits from the file as from the model in memory', () => {
    const mem = syntheticModel('stories15M', 7, 'q4_0', { pick: (r) => ggufTensorType('q4_0', { ...r, nLayers: 6 }) });
    const a = new ReferenceExecutor(loaded);
    const b = new ReferenceExecutor(mem);
    for (const [t, p] of [[1, 0], [500, 1], [31999, 2]] as const) expect(Array.from(a.forward(t, p))).toEqual(Array.from(b.forward(t, p)));
  });

  it.each([
    [['--shape', 'nope', '--out', 'x.gguf'], /unknown shape/],
    [['--shape', 'stories15M', '--model', 'a.bin', '--out', 'x.gguf'], /one of them/],
    [['--shape', 'stories15M', '--seed', '-1', '--out', 'x.gguf'], /--seed/],
  ])('rejects %j', async (argv, msg) => {
    await expect(convertCommand(argv as string[], io().io)).rejects.toThrow(KloopError);
    await expect(convertCommand(argv as string[], io().io)).rejects.toThrow(msg);
  });

  it('llama.cpp reads the f32 file: the reference executor\'s greedy tokens and next-token distribution', async (ctx) => {
    const nlc = await llamaCppOrSkip(ctx);
    if (!nlc) return;
    const f32 = path.join(tmp, 'stories15M-f32.gguf');
    expect(await convertCommand(['--shape', 'stories15M', '--out', f32], io().io)).toBe(0);
    const steps = 8;
    const kloop = referenceGreedy(await loadModel(f32), [1], steps);
    const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: f32 });
    try {
      expect(model.fileInfo.metadata.general.architecture).toBe('llama');
      const theirs = await llamaGreedy(model, [1], steps, 64);
      console.log(`synthetic stories15M f32, llama.cpp: ${theirs.join(' ')}\nkloop:     ${kloop.join(' ')}`);
      expect(theirs).toEqual(kloop);
      // On random weights the embeddings dominate the residual stream, so greedy decoding repeats
      // the last token: the next-token distribution after a varied prompt says more. Its five
      // most likely tokens and their log-probabilities in llama.cpp and the reference executor.
      const prompt = [1, 700, 9000, 31000];
      const ex = new ReferenceExecutor(await loadModel(f32));
      let logits: Float32Array = new Float32Array(0);
      prompt.forEach((t, p) => void (logits = ex.forward(t, p)));
      const mx = logits.reduce((a, b) => Math.max(a, b), -Infinity);
      const lse = mx + Math.log(logits.reduce((a, v) => a + Math.exp(v - mx), 0));
      const ours = Array.from(logits, (v, i) => [i, v - lse] as const).sort((a, b) => b[1] - a[1]).slice(0, 5);
      const context = await model.createContext({ contextSize: 64, threads: 1 });
      try {
        const first = await context.getSequence().evaluateWithMetadata(prompt as never, { probabilities: true }, { temperature: 0 }).next();
        const probs = (first.value as { probabilities: Map<number, number> }).probabilities;
        const llamaTop = [...probs.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5);
        console.log(`top 5 after ${prompt.join(' ')}: llama.cpp ${llamaTop.map(([t, q]) => `${t}:${q.toExponential(2)}`).join(' ')}; kloop ${ours.map(([t, l]) => `${t}:${Math.exp(l).toExponential(2)}`).join(' ')}`);
        expect(llamaTop.map(([t]) => t)).toEqual(ours.map(([t]) => t));
        llamaTop.forEach(([, q], i) => expect(Math.abs(Math.log(q) - ours[i]![1]), `token ${llamaTop[i]![0]}`).toBeLessThan(0.05));
      } finally {
        await context.dispose();
      }
    } finally {
      await model.dispose();
      await llama.dispose();
    }
  }, 60_000);
});
