import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../src/loader/types.ts';
import {
  PRESETS,
  PRESET_NAMES,
  getPreset,
  shapeFromHFConfig,
  shapeFromModelConfig,
} from '../../src/rdu-emulation/presets/index.ts';
import { paramCounts, weightBytesRead, flopsPerToken, FLOP_CONVENTIONS } from '../../src/rdu-emulation/timing/index.ts';
import { expectWithin } from './helpers.ts';

describe('presets', () => {
  it('the eight issue presets, lower case', () => {
    expect([...PRESET_NAMES].sort()).toEqual(
      ['llama-3.1-8b', 'llama-3.1-70b', 'llama-3.1-405b', 'llama-3.2-1b', 'llama-3.2-3b', 'mistral-7b', 'qwen2.5-7b', 'qwen2.5-72b'].sort(),
    );
    expect(getPreset('Llama-3.1-8B')).toBe(PRESETS['llama-3.1-8b']);
    expect(getPreset('nope')).toBeUndefined();
  });
  // Published parameter counts (model cards / safetensors totals).
  const published: Record<string, number> = {
    'llama-3.1-8b': 8.03e9,
    'llama-3.1-70b': 70.6e9,
    'llama-3.1-405b': 405.9e9,
    'llama-3.2-1b': 1.24e9,
    'llama-3.2-3b': 3.21e9,
    'mistral-7b': 7.24e9,
    'qwen2.5-7b': 7.62e9,
    'qwen2.5-72b': 72.7e9,
  };
  for (const [name, n] of Object.entries(published)) {
    it(`${name}: ${n / 1e9}e9 parameters (+-0.5%)`, () => expectWithin(paramCounts(PRESETS[name]!).total, n, 0.005, name));
  }
});

describe('shapeFromHFConfig', () => {
  const llama8bConfig = {
    _name_or_path: 'meta-llama/Llama-3.1-8B',
    model_type: 'llama',
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    vocab_size: 128256,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
  };
  it('reads a Llama config.json (head_dim derived) identical to the preset', () => {
    const s = shapeFromHFConfig(llama8bConfig);
    expect({ ...s, name: 'llama-3.1-8b' }).toEqual(PRESETS['llama-3.1-8b']);
    expect(s.name).toBe('meta-llama/Llama-3.1-8B');
  });
  it('qwen2 gets q/k/v biases; float32 is 4 bytes; explicit head_dim wins', () => {
    const s = shapeFromHFConfig({ ...llama8bConfig, model_type: 'qwen2', torch_dtype: 'float32', head_dim: 64 });
    expect(s.attentionBias).toBe(true);
    expect(s.bytesPerParam).toBe(4);
    expect(s.headDim).toBe(64);
  });
  it('names the missing field', () => {
    const { hidden_size: _, ...rest } = llama8bConfig;
    expect(() => shapeFromHFConfig(rest)).toThrow(/hidden_size/);
    expect(() => shapeFromHFConfig([])).toThrow(/not a JSON object/);
    expect(() => shapeFromHFConfig({ ...llama8bConfig, torch_dtype: 'int3' })).toThrow(/torch_dtype/);
  });
});

describe('shapeFromModelConfig', () => {
  it("maps kloop's ModelConfig (stories260K shape)", () => {
    const cfg: ModelConfig = {
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
    };
    const s = shapeFromModelConfig(cfg, 'stories260K');
    expect(s).toMatchObject({ name: 'stories260K', nLayers: 5, hidden: 64, ffn: 172, nHeads: 8, nKvHeads: 4, headDim: 8, vocab: 512, tiedEmbeddings: true, bytesPerParam: 2 });
    // 260K parameters: embedding 32768 + 5 layers x 48,448 + 64.
    expect(paramCounts(s).total).toBe(512 * 64 + 5 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 172 + 128) + 64);
  });
});

describe('counting conventions', () => {
  const s = PRESETS['llama-3.1-8b']!;
  it('embedding-row-only reads the table once less (untied) and the same when tied', () => {
    expect(weightBytesRead(s) - weightBytesRead(s, 'embedding-row-only')).toBe((s.vocab - 1) * s.hidden * 2);
    const tied = PRESETS['llama-3.2-1b']!;
    expect(weightBytesRead(tied, 'embedding-row-only')).toBe(weightBytesRead(tied));
  });
  it('matmul-only drops the untied embedding from the FLOPs', () => {
    const d = flopsPerToken(s, 0, FLOP_CONVENTIONS['2n-plus-attention']) - flopsPerToken(s, 0, FLOP_CONVENTIONS['matmul-only']);
    expect(d).toBe(2 * s.vocab * s.hidden);
  });
});
