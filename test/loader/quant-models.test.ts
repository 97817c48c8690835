/**
 * The quantized GGUF files llama.cpp wrote (../shared/models/quant) through the CPU reference:
 * each reproduces the logits that float32 llama2.c computed from gguf-py's dequantization of the
 * same file (../shared/fixtures/quant), teacher-forcing the fixture's tokens, and the loaded
 * matrices keep the encodings the file holds.
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceExecutor } from '../../src/engine/reference.ts';
import { loadModel } from '../../src/loader/index.ts';
import { dequantize, isPacked, matrixBytes, matrixType, packedMatrix, typeSummary } from '../../src/loader/quant.ts';
import { quantizeMatrix } from '../../src/loader/quantize.ts';
import { permuteMatrix, permuteRows, unpermuteMatrix, unpermuteRows } from '../../src/loader/permute.ts';
import { getU64, ggufLayout, setU32, setU64 } from '../fuzz/formats.ts';
import { expectKloopError } from './helpers.ts';
import type { LoadedModel, Matrix, WeightType } from '../../src/loader/types.ts';
import { fixturesDir, modelsDir } from '../helpers/paths.ts';
import { argmaxOf, relError } from '../helpers/gpu.ts';

interface Fixture {
  positions: number;
  tokens: number[];
}

/** Each file with the matrix encodings it holds (see the models' README), by tensor. */
const FILES: { name: string; types: WeightType[]; check: (m: LoadedModel) => void }[] = [
  {
    name: 'stories260K-Q4_0',
    types: ['f16', 'q4_0', 'q8_0'],
    check: (m) => {
      expect(matrixType(m.weights.wcls)).toBe('q8_0'); // output: Q6_K falls back to Q8_0 (64 columns)
      expect(matrixType(m.weights.tokEmb)).toBe('q4_0');
      for (const l of m.weights.layers) {
        expect(matrixType(l.w2)).toBe('f16'); // ffn_down: rows of 172
        for (const w of [l.wq, l.wk, l.wv, l.wo, l.w1, l.w3]) expect(matrixType(w)).toBe('q4_0');
      }
    },
  },
  {
    name: 'stories260K-Q4_K_M',
    types: ['f16', 'q5_0', 'q8_0'],
    check: (m) => {
      expect(matrixType(m.weights.wcls)).toBe('q8_0');
      expect(matrixType(m.weights.tokEmb)).toBe('q5_0'); // Q4_K falls back to Q5_0
      for (const l of m.weights.layers) expect(matrixType(l.w2)).toBe('f16');
    },
  },
  {
    name: 'synthetic-k512-Q4_K_M',
    types: ['q4_k', 'q6_k'],
    check: (m) => {
      const l = m.weights.layers[0]!;
      expect(matrixType(m.weights.wcls)).toBe('q6_k');
      expect(matrixType(l.wv)).toBe('q6_k');
      expect(matrixType(l.w2)).toBe('q6_k');
      for (const w of [m.weights.tokEmb, l.wq, l.wk, l.wo, l.w1, l.w3]) expect(matrixType(w)).toBe('q4_k');
    },
  },
  {
    name: 'synthetic-k512-Q6_K',
    types: ['q6_k'],
    check: () => {},
  },
];

function matrices(m: LoadedModel): Matrix[] {
  const w = m.weights;
  return [w.tokEmb, ...w.layers.flatMap((l) => [l.wq, l.wk, l.wv, l.wo, l.w1, l.w2, l.w3]), ...(w.wcls === w.tokEmb ? [] : [w.wcls])];
}

describe('quantized GGUF files through the CPU reference', () => {
  it.each(FILES)('$name: tensor types as in the file, logits match the fixture', async ({ name, types, check }) => {
    const file = path.join(modelsDir, 'quant', `${name}.gguf`);
    const model = await loadModel(file);
    const ms = matrices(model);
    const held = [...new Set(ms.map(matrixType))].sort();
    expect(held).toEqual([...types].sort());
    check(model);
    // Nothing is widened at load: the matrices take about what the file holds.
    const bytes = ms.reduce((a, m) => a + matrixBytes(m), 0);
    expect(ms.every(isPacked)).toBe(true);
    expect(bytes).toBeLessThan(fs.statSync(file).size);

    const meta = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'quant', `${name}.json`), 'utf8')) as Fixture;
    const raw = fs.readFileSync(path.join(fixturesDir, 'quant', `${name}.logits.f32`));
    const ref = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const V = model.config.vocabSize;
    expect(ref.length).toBe(meta.positions * V);
    const ex = new ReferenceExecutor(model);
    let worst = 0;
    let agree = 0;
    for (let p = 0; p < meta.positions; p++) {
      const got = ex.forward(meta.tokens[p]!, p);
      const want = ref.subarray(p * V, (p + 1) * V);
      worst = Math.max(worst, relError(got, want));
      if (argmaxOf(got) === argmaxOf(want)) agree++;
    }
    console.log(`${name}: ${typeSummary(ms)}; ${meta.positions} positions, max row RMS relative error ${worst.toExponential(2)}, top-1 agrees at ${agree}/${meta.positions}`);
    expect(worst).toBeLessThanOrEqual(1e-5);
    expect(agree).toBe(meta.positions);
  }, 120_000);
});

describe('corrupt quantized files are clear errors', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kloop-quant-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const src = new Uint8Array(fs.readFileSync(path.join(modelsDir, 'quant', 'stories260K-Q4_0.gguf')));
  const L = ggufLayout(src);
  const tensor = (name: string) => L.tensors.find((t) => t.name === name)!;
  let n = 0;
  const variant = (edit: (b: Uint8Array) => Uint8Array): string => {
    const p = path.join(tmp, `q${n++}.gguf`);
    fs.writeFileSync(p, edit(new Uint8Array(src)));
    return p;
  };

  it('a NaN or infinite block scale, naming the tensor and the block', async () => {
    const t = tensor('blk.0.attn_q.weight');
    expect(t.type).toBe(2);
    for (const [h, k] of [[0x7e00, 3], [0xfc00, 0]] as const) {
      const p = variant((b) => {
        b[t.start + 18 * k] = h & 0xff;
        b[t.start + 18 * k + 1] = h >> 8;
        return b;
      });
      await expectKloopError(loadModel(p), new RegExp(`tensor blk\\.0\\.attn_q\\.weight \\(Q4_0\\): block ${k} has a scale that is NaN or infinite`));
    }
    const f = tensor('blk.2.ffn_down.weight'); // F16
    const p = variant((b) => {
      b[f.start + 2 * 7 + 1] = 0x7c;
      return b;
    });
    await expectKloopError(loadModel(p), /tensor blk\.2\.ffn_down\.weight \(F16\): value 7 is NaN or infinite/);
  });

  it('blocks past the end of the file', async () => {
    const t = tensor('blk.4.ffn_up.weight');
    await expectKloopError(loadModel(variant((b) => b.slice(0, t.start + 100))), /tensor blk\.4\.ffn_up\.weight data .* lies beyond the end of the file/);
    // A row count whose blocks do not fit the file.
    const q = tensor('token_embd.weight');
    await expectKloopError(loadModel(variant((b) => setU64(b, q.dimsPos[1]!, 16384n))), /tensor token_embd\.weight data .* lies beyond the end of the file/);
  });

  it('rows that are not whole blocks', async () => {
    const t = tensor('blk.1.attn_k.weight');
    expect(Number(getU64(src, t.dimsPos[0]!))).toBe(64);
    await expectKloopError(
      loadModel(variant((b) => setU64(b, t.dimsPos[0]!, 48n))),
      /tensor blk\.1\.attn_k\.weight has rows of 48 values, not a multiple of the Q4_0 block \(32 values\)/,
    );
  });

  it('types kloop does not read, by name', async () => {
    const t = tensor('blk.3.attn_v.weight');
    await expectKloopError(
      loadModel(variant((b) => setU32(b, t.typePos, 11))),
      /tensor blk\.3\.attn_v\.weight has unsupported type Q3_K \(kloop reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K\)/,
    );
    await expectKloopError(loadModel(variant((b) => setU32(b, t.typePos, 1234))), /tensor blk\.3\.attn_v\.weight has unsupported type type 1234/);
  });
});

describe('RoPE row permutation of packed matrices', () => {
  it('moves whole rows: the same as permuting the decoded values', () => {
    const heads = 4, headDim = 8, cols = 64;
    const x = Float32Array.from({ length: heads * headDim * cols }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    for (const type of ['q4_0', 'q8_0', 'f16', 'q6_k'] as const) {
      const c = type === 'q6_k' ? 256 : cols;
      const xs = type === 'q6_k' ? Float32Array.from({ length: heads * headDim * c }, (_, i) => Math.cos(i * 0.11)) : x;
      const m = quantizeMatrix(type, xs, heads * headDim, c);
      const un = unpermuteMatrix(m, heads, headDim, c);
      expect(un.type).toBe(type);
      expect(Array.from(dequantize(un))).toEqual(Array.from(unpermuteRows(dequantize(m), heads, headDim, c)));
      expect(Array.from(dequantize(permuteMatrix(m, heads, headDim, c)))).toEqual(Array.from(permuteRows(dequantize(m), heads, headDim, c)));
      expect(permuteMatrix(un, heads, headDim, c).data).toEqual(m.data);
    }
    expect(() => unpermuteMatrix(packedMatrix('q8_0', 2, 32, new Uint8Array(68)), 4, 8, 32)).toThrow(/does not form/);
  });
});
