/**
 * Model shapes for the timing model: named presets (published Hugging Face config.json values)
 * and converters from a config.json object or from kloop's own ModelConfig.
 */
import type { ModelConfig } from '../../loader/types.ts';
import type { ModelShape } from '../timing/types.ts';

const BF16 = 2;

/**
 * Presets, lower-case names. Values from each model's config.json on the Hugging Face hub
 * (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
 * head_dim, vocab_size, tie_word_embeddings), BF16 weights and KV cache.
 */
export const PRESETS: Readonly<Record<string, ModelShape>> = {
  // meta-llama/Llama-3.1-8B: 8.03e9 parameters
  'llama-3.1-8b': shape('llama-3.1-8b', 32, 4096, 32, 8, 128, 14336, 128256, false),
  // meta-llama/Llama-3.1-70B: 70.6e9
  'llama-3.1-70b': shape('llama-3.1-70b', 80, 8192, 64, 8, 128, 28672, 128256, false),
  // meta-llama/Llama-3.1-405B: 405.9e9
  'llama-3.1-405b': shape('llama-3.1-405b', 126, 16384, 128, 8, 128, 53248, 128256, false),
  // meta-llama/Llama-3.2-1B: 1.24e9, tied embeddings, head_dim 64
  'llama-3.2-1b': shape('llama-3.2-1b', 16, 2048, 32, 8, 64, 8192, 128256, true),
  // meta-llama/Llama-3.2-3B: 3.21e9, tied embeddings
  'llama-3.2-3b': shape('llama-3.2-3b', 28, 3072, 24, 8, 128, 8192, 128256, true),
  // mistralai/Mistral-7B-v0.1: 7.24e9 (v0.3 has vocab 32768)
  'mistral-7b': shape('mistral-7b', 32, 4096, 32, 8, 128, 14336, 32000, false),
  // Qwen/Qwen2.5-7B: 7.62e9, q/k/v biases
  'qwen2.5-7b': shape('qwen2.5-7b', 28, 3584, 28, 4, 128, 18944, 152064, false, true),
  // Qwen/Qwen2.5-72B: 72.7e9, q/k/v biases
  'qwen2.5-72b': shape('qwen2.5-72b', 80, 8192, 64, 8, 128, 29568, 152064, false, true),
};

export const PRESET_NAMES: readonly string[] = Object.keys(PRESETS);

/** The preset called `name` (case-insensitive), or undefined. */
export function getPreset(name: string): ModelShape | undefined {
  return PRESETS[name.toLowerCase()];
}

function shape(
  name: string,
  nLayers: number,
  hidden: number,
  nHeads: number,
  nKvHeads: number,
  headDim: number,
  ffn: number,
  vocab: number,
  tiedEmbeddings: boolean,
  attentionBias = false,
): ModelShape {
  return { name, nLayers, hidden, nHeads, nKvHeads, headDim, ffn, vocab, bytesPerParam: BF16, tiedEmbeddings, attentionBias };
}

const DTYPE_BYTES: Record<string, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float8_e4m3fn: 1,
  int8: 1,
};

/**
 * A ModelShape from a Hugging Face config.json object (Llama, Mistral, Qwen2 families).
 * Throws an Error naming the first missing or invalid field.
 */
export function shapeFromHFConfig(json: unknown, name?: string): ModelShape {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('config.json: not a JSON object');
  const c = json as Record<string, unknown>;
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new Error(`config.json: "${key}" must be a positive integer (got ${JSON.stringify(c[key])})`);
    }
    return v;
  };
  const hidden = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const dtype = typeof c.torch_dtype === 'string' ? c.torch_dtype : typeof c.dtype === 'string' ? c.dtype : 'bfloat16';
  const bytesPerParam = DTYPE_BYTES[dtype];
  if (bytesPerParam === undefined) throw new Error(`config.json: unsupported torch_dtype "${dtype}"`);
  const modelType = typeof c.model_type === 'string' ? c.model_type : '';
  const configName = typeof c._name_or_path === 'string' && c._name_or_path ? c._name_or_path : modelType || 'config.json';
  return {
    name: name ?? configName,
    nLayers: int('num_hidden_layers'),
    hidden,
    nHeads,
    nKvHeads: int('num_key_value_heads', nHeads),
    headDim: int('head_dim', hidden / nHeads),
    ffn: int('intermediate_size'),
    vocab: int('vocab_size'),
    bytesPerParam,
    tiedEmbeddings: c.tie_word_embeddings === true,
    attentionBias: c.attention_bias === true || modelType === 'qwen2',
  };
}

/**
 * A ModelShape from a model kloop has loaded. kloop computes in f32, but the bytes per
 * parameter is a timing parameter: pass the precision you want to model (default BF16).
 */
export function shapeFromModelConfig(cfg: ModelConfig, name = 'kloop-model', bytesPerParam = BF16): ModelShape {
  return {
    name,
    nLayers: cfg.nLayers,
    hidden: cfg.dim,
    nHeads: cfg.nHeads,
    nKvHeads: cfg.nKvHeads,
    headDim: cfg.headDim,
    ffn: cfg.hiddenDim,
    vocab: cfg.vocabSize,
    bytesPerParam,
    tiedEmbeddings: cfg.tiedEmbeddings,
    attentionBias: cfg.attentionBias,
  };
}
