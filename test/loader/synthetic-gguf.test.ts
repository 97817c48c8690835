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
import { argmaxOf } from '../helpers/gpu.ts';

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

  it('llama.cpp reads the f32 file and continues it with the reference executor\'s greedy tokens', async (ctx) => {
    let nlc: typeof import('node-llama-cpp');
    try {
      nlc = await import('node-llama-cpp');
    } catch (e) {
      console.log(`SKIPPED: node-llama-cpp cannot be imported (${(e as Error).message.split('\n')[0]})`);
      ctx.skip();
      return;
    }
    const f32 = path.join(tmp, 'stories15M-f32.gguf');
    expect(await convertCommand(['--shape', 'stories15M', '--out', f32], io().io)).toBe(0);
    const ours = await loadModel(f32);
    const ex = new ReferenceExecutor(ours);
    const steps = 8;
    const kloop: number[] = [];
    let logits = ex.forward(1, 0);
    for (let i = 0; i < steps; i++) {
      kloop.push(argmaxOf(logits));
      logits = ex.forward(kloop[i]!, i + 1);
    }
    const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: f32 });
    try {
      expect(model.fileInfo.metadata.general.architecture).toBe('llama');
      const context = await model.createContext({ contextSize: 64, threads: 1 });
      const theirs: number[] = [];
      for await (const t of context.getSequence().evaluate([1] as never, { temperature: 0 })) {
        theirs.push(t as number);
        if (theirs.length >= steps) break;
      }
      await context.dispose();
      console.log(`synthetic stories15M f32, llama.cpp: ${theirs.join(' ')}\nkloop:     ${kloop.join(' ')}`);
      expect(theirs).toEqual(kloop);
    } finally {
      await model.dispose();
      await llama.dispose();
    }
  }, 60_000);
});
