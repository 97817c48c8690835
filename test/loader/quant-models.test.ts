/**
 * The quantized GGUF files llama.cpp wrote (../shared/models/quant) through the CPU reference:
 * each reproduces the logits that float32 llama2.c computed from gguf-py's dequantization of the
 * same file (../shared/fixtures/quant), teacher-forcing the fixture's tokens, and the loaded
 * matrices keep the encodings the file holds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReferenceExecutor } from '../../src/engine/reference.ts';
import { loadModel } from '../../src/loader/index.ts';
import { isPacked, matrixBytes, matrixType, typeSummary } from '../../src/loader/quant.ts';
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
