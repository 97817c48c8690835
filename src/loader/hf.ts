/**
 * Hugging Face model folders: config.json, model.safetensors (or shards listed in
 * model.safetensors.index.json) and tokenizer.json. Llama-family models (llama, mistral,
 * qwen2). q/k rows (and biases) are un-permuted from rotate_half to adjacent-pair order.
 * F16 / BF16 weight matrices stay 16-bit (PackedMatrix); norms and biases are widened to float32.
 * Options this engine cannot honour are errors naming config.json and the key.
 */
import { basename, join } from 'node:path';
import { stat } from 'node:fs/promises';
import type { LayerWeights, LoadedModel, Matrix, ModelConfig, ModelWeights } from './types.ts';
import { BinaryFile, LIMITS, checkInt, fileError, need, readJsonFile, validateConfig } from './util.ts';
import { readSafeMatrix, readSafeTensor, readSafetensorsHeader, type SafeTensorInfo } from './safetensors.ts';
import { JsonTokenizer } from './tokenizer.ts';
import { unpermuteMatrix, unpermuteRows } from './permute.ts';

const MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;

/** Parse and check a Hugging Face config.json (its text) into a ModelConfig. */
export function parseHFConfig(file: string, raw: unknown): ModelConfig {
  need(raw && typeof raw === 'object' && !Array.isArray(raw), file, 'not a JSON object');
  const c = raw as Record<string, unknown>;
  const bad = (key: string, problem: string) => fileError(file, `${key}: ${problem}`);
  const int = (key: string, min: number, max: number, dflt?: number): number => {
    const v = c[key] ?? dflt;
    if (v === undefined) throw bad(key, 'missing');
    return checkInt(file, key, v, min, max);
  };
  const float = (key: string, dflt: number): number => {
    const v = c[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `not a number (${JSON.stringify(v)})`);
    return v;
  };
  const modelType = c.model_type;
  if (typeof modelType !== 'string' || !(MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw bad('model_type', `unsupported model type ${JSON.stringify(modelType)} (${MODEL_TYPES.join(', ')} supported)`);
  }
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') throw bad('hidden_act', `unsupported activation ${JSON.stringify(c.hidden_act)} (silu only)`);
  if (c.rope_scaling !== undefined && c.rope_scaling !== null) {
    const rs = c.rope_scaling as Record<string, unknown>;
    const type = rs && typeof rs === 'object' ? (rs.rope_type ?? rs.type) : rs;
    if (type !== 'default') throw bad('rope_scaling', `unsupported RoPE scaling ${JSON.stringify(type ?? rs)} (only null)`);
  }
  if (c.partial_rotary_factor !== undefined && c.partial_rotary_factor !== 1) {
    throw bad('partial_rotary_factor', `partial RoPE (${JSON.stringify(c.partial_rotary_factor)}) is not supported`);
  }
  if (c.mlp_bias === true) throw bad('mlp_bias', 'MLP biases are not supported');
  if (modelType === 'qwen2' && c.use_sliding_window === true) throw bad('use_sliding_window', 'sliding-window attention is not supported');
  if (modelType === 'mistral' && c.sliding_window !== undefined && c.sliding_window !== null) {
    const sw = c.sliding_window;
    const maxPos = c.max_position_embeddings;
    if (!(typeof sw === 'number' && typeof maxPos === 'number' && sw >= maxPos)) {
      throw bad('sliding_window', `sliding-window attention (${JSON.stringify(sw)}) is not supported`);
    }
  }
  let attentionBias: boolean;
  if (modelType === 'qwen2') attentionBias = true;
  else {
    if (c.attention_bias !== undefined && typeof c.attention_bias !== 'boolean') throw bad('attention_bias', 'not a boolean');
    if (c.attention_bias === true) throw bad('attention_bias', 'Llama attention biases (with an o_proj bias) are not supported');
    attentionBias = false;
  }
  const dim = int('hidden_size', 1, LIMITS.dim);
  const nHeads = int('num_attention_heads', 1, LIMITS.nHeads);
  const headDimDefault = dim % nHeads === 0 ? dim / nHeads : undefined;
  if (c.head_dim === undefined && headDimDefault === undefined) throw bad('hidden_size', `${dim} is not divisible by num_attention_heads ${nHeads} and head_dim is not set`);
  const vocabSize = int('vocab_size', 1, LIMITS.vocabSize);
  const tokenId = (key: string): number[] => {
    const v = c[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const x of list) checkInt(file, key, x, 0, vocabSize - 1);
    return list as number[];
  };
  const bos = tokenId('bos_token_id');
  const eos = tokenId('eos_token_id');
  const tie = c.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') throw bad('tie_word_embeddings', 'not a boolean');
  const config: ModelConfig = {
    dim,
    hiddenDim: int('intermediate_size', 1, LIMITS.hiddenDim),
    nLayers: int('num_hidden_layers', 1, LIMITS.nLayers),
    nHeads,
    nKvHeads: int('num_key_value_heads', 1, LIMITS.nHeads, nHeads),
    headDim: int('head_dim', 1, LIMITS.headDim, headDimDefault),
    vocabSize,
    seqLen: int('max_position_embeddings', 1, LIMITS.seqLen),
    normEps: float('rms_norm_eps', 1e-6),
    ropeTheta: float('rope_theta', 10000),
    attentionBias,
    tiedEmbeddings: tie,
    bosId: bos[0] ?? -1,
    eosId: eos[0] ?? -1,
  };
  if (eos.length > 1) config.eosIds = eos;
  validateConfig(file, config);
  return config;
}

/** Load a Hugging Face model folder. */
export async function loadHF(dir: string): Promise<LoadedModel> {
  const cfgPath = join(dir, 'config.json');
  const config = parseHFConfig(cfgPath, await readJsonFile(cfgPath, 1 << 24));

  const tokPath = join(dir, 'tokenizer.json');
  if (!(await isFile(tokPath))) throw fileError(dir, 'missing tokenizer.json (a Hugging Face tokenizer.json is required)');
  const tokJson = await readJsonFile(tokPath, 1 << 28);
  need(tokJson && typeof tokJson === 'object' && !Array.isArray(tokJson), tokPath, 'not a JSON object');
  const tokenizer = new JsonTokenizer(tokJson as Record<string, unknown>, {
    source: tokPath,
    bosId: config.bosId >= 0 ? config.bosId : null,
    eosId: config.eosId >= 0 ? config.eosId : null,
    addBos: config.bosId >= 0 && postProcessorAddsPrefix(tokJson as Record<string, unknown>),
  });
  need(
    tokenizer.vocabSize <= config.vocabSize,
    tokPath,
    `the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocab_size ${config.vocabSize}`,
  );

  const files: BinaryFile[] = [];
  try {
    const tensors = await openTensors(dir, files);
    const tensor = (name: string): SafeTensorInfo => {
      const t = tensors.get(name);
      if (!t) throw fileError(dir, `missing tensor ${name}`);
      return t;
    };
    /** A 1-D tensor (norm, bias) as float32. */
    const get = async (name: string, shape: number[]): Promise<Float32Array> => readSafeTensor(tensor(name), shape);
    /** A matrix [rows, cols]: float32, or 16-bit as stored. */
    const mat = async (name: string, rows: number, cols: number): Promise<Matrix> => readSafeMatrix(tensor(name), rows, cols);
    const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize } = config;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    // Tensors of layers past num_hidden_layers mean config.json does not match the weights.
    for (const name of tensors.keys()) {
      const m = /^model\.layers\.(\d+)\./.exec(name);
      need(!m || Number(m[1]) < nLayers, cfgPath, `num_hidden_layers is ${nLayers} but the weights hold tensor ${name}`);
    }
    const tokEmb = await mat('model.embed_tokens.weight', vocabSize, dim);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < nLayers; l++) {
      const p = `model.layers.${l}.`;
      if (tensors.has(`${p}self_attn.o_proj.bias`)) throw fileError(dir, `tensor ${p}self_attn.o_proj.bias: output-projection biases are not supported`);
      const lw: LayerWeights = {
        attnNorm: await get(`${p}input_layernorm.weight`, [dim]),
        wq: unpermuteMatrix(await mat(`${p}self_attn.q_proj.weight`, qDim, dim), nHeads, headDim, dim),
        wk: unpermuteMatrix(await mat(`${p}self_attn.k_proj.weight`, kvDim, dim), nKvHeads, headDim, dim),
        wv: await mat(`${p}self_attn.v_proj.weight`, kvDim, dim),
        wo: await mat(`${p}self_attn.o_proj.weight`, dim, qDim),
        ffnNorm: await get(`${p}post_attention_layernorm.weight`, [dim]),
        w1: await mat(`${p}mlp.gate_proj.weight`, hiddenDim, dim),
        w2: await mat(`${p}mlp.down_proj.weight`, dim, hiddenDim),
        w3: await mat(`${p}mlp.up_proj.weight`, hiddenDim, dim),
      };
      if (config.attentionBias) {
        lw.bq = unpermuteRows(await get(`${p}self_attn.q_proj.bias`, [qDim]), nHeads, headDim, 1);
        lw.bk = unpermuteRows(await get(`${p}self_attn.k_proj.bias`, [kvDim]), nKvHeads, headDim, 1);
        lw.bv = await get(`${p}self_attn.v_proj.bias`, [kvDim]);
      }
      layers.push(lw);
    }
    const finalNorm = await get('model.norm.weight', [dim]);
    const wcls = config.tiedEmbeddings ? tokEmb : await mat('lm_head.weight', vocabSize, dim);
    const weights: ModelWeights = { tokEmb, layers, finalNorm, wcls };
    return { name: basename(dir), source: dir, format: 'hf', config, weights, tokenizer };
  } finally {
    for (const f of files) await f.close();
  }
}

/** The tensors of model.safetensors or of the shards in model.safetensors.index.json. */
async function openTensors(dir: string, files: BinaryFile[]): Promise<Map<string, SafeTensorInfo>> {
  const single = join(dir, 'model.safetensors');
  if (await isFile(single)) {
    const f = await BinaryFile.open(single);
    files.push(f);
    return readSafetensorsHeader(f);
  }
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!(await isFile(indexPath))) throw fileError(dir, 'no model.safetensors or model.safetensors.index.json');
  const index = (await readJsonFile(indexPath, 1 << 26)) as { weight_map?: unknown };
  const map = index && typeof index === 'object' ? index.weight_map : undefined;
  need(map && typeof map === 'object' && !Array.isArray(map), indexPath, 'missing "weight_map"');
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    need(typeof shard === 'string' && shard === basename(shard) && shard.length > 0, indexPath, `tensor ${name}: bad shard file name ${JSON.stringify(shard)}`);
    const list = byShard.get(shard) ?? [];
    list.push(name);
    byShard.set(shard, list);
  }
  const out = new Map<string, SafeTensorInfo>();
  for (const [shard, names] of byShard) {
    const f = await BinaryFile.open(join(dir, shard));
    files.push(f);
    const tensors = await readSafetensorsHeader(f);
    for (const name of names) {
      const t = tensors.get(name);
      need(t, f.path, `tensor ${name} listed in model.safetensors.index.json is missing`);
      out.set(name, t);
    }
  }
  return out;
}

/** Whether tokenizer.json's post-processor puts a special token (BOS) before the text. */
function postProcessorAddsPrefix(json: Record<string, unknown>): boolean {
  const first = (pp: unknown): boolean => {
    if (!pp || typeof pp !== 'object') return false;
    const o = pp as Record<string, unknown>;
    if (o.type === 'TemplateProcessing' && Array.isArray(o.single)) {
      const s = o.single[0] as Record<string, unknown> | undefined;
      return !!s && typeof s === 'object' && 'SpecialToken' in s;
    }
    if (o.type === 'Sequence' && Array.isArray(o.processors)) return o.processors.some(first);
    return false;
  };
  return first(json.post_processor);
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
