/**
 * Write a LoadedModel as a Hugging Face folder: config.json, model.safetensors (F32) and
 * tokenizer.json (the tokenizer's toJSON()). wq/wk (and bq/bk) rows are permuted to HF's
 * rotate_half order, the inverse of what the HF loader does.
 */
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoadedModel } from './types.ts';
import { fileError } from './util.ts';
import { dequantize } from './quant.ts';
import { permuteRows } from './permute.ts';
import { safetensorsHeader } from './safetensors.ts';

/** The config.json object of `model`. */
export function hfConfig(model: LoadedModel): Record<string, unknown> {
  const c = model.config;
  const qwen = c.attentionBias;
  return {
    architectures: [qwen ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: qwen ? 'qwen2' : 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    hidden_act: 'silu',
    ...(qwen ? {} : { attention_bias: false, mlp_bias: false }),
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosId >= 0 ? c.bosId : null,
    eos_token_id: c.eosIds && c.eosIds.length > 1 ? c.eosIds : c.eosId >= 0 ? c.eosId : null,
    torch_dtype: 'float32',
  };
}

/** Write `model` into `outDir` (created if needed) as a Hugging Face model folder. */
export async function convertToHF(model: LoadedModel, outDir: string): Promise<void> {
  const c = model.config;
  const w = model.weights;
  const { nHeads, nKvHeads, headDim, dim, vocabSize, hiddenDim } = c;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const tensors: { name: string; shape: number[]; data: Float32Array }[] = [];
  tensors.push({ name: 'model.embed_tokens.weight', shape: [vocabSize, dim], data: dequantize(w.tokEmb) });
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    tensors.push(
      { name: `${p}input_layernorm.weight`, shape: [dim], data: l.attnNorm },
      { name: `${p}self_attn.q_proj.weight`, shape: [qDim, dim], data: permuteRows(dequantize(l.wq), nHeads, headDim, dim) },
      { name: `${p}self_attn.k_proj.weight`, shape: [kvDim, dim], data: permuteRows(dequantize(l.wk), nKvHeads, headDim, dim) },
      { name: `${p}self_attn.v_proj.weight`, shape: [kvDim, dim], data: dequantize(l.wv) },
      { name: `${p}self_attn.o_proj.weight`, shape: [dim, qDim], data: dequantize(l.wo) },
      { name: `${p}post_attention_layernorm.weight`, shape: [dim], data: l.ffnNorm },
      { name: `${p}mlp.gate_proj.weight`, shape: [hiddenDim, dim], data: dequantize(l.w1) },
      { name: `${p}mlp.up_proj.weight`, shape: [hiddenDim, dim], data: dequantize(l.w3) },
      { name: `${p}mlp.down_proj.weight`, shape: [dim, hiddenDim], data: dequantize(l.w2) },
    );
    if (c.attentionBias) {
      if (!l.bq || !l.bk || !l.bv) throw fileError(outDir, `layer ${i} has no q/k/v biases although the config says attentionBias`);
      tensors.push(
        { name: `${p}self_attn.q_proj.bias`, shape: [qDim], data: permuteRows(l.bq, nHeads, headDim, 1) },
        { name: `${p}self_attn.k_proj.bias`, shape: [kvDim], data: permuteRows(l.bk, nKvHeads, headDim, 1) },
        { name: `${p}self_attn.v_proj.bias`, shape: [kvDim], data: l.bv },
      );
    }
  });
  tensors.push({ name: 'model.norm.weight', shape: [dim], data: w.finalNorm });
  if (!c.tiedEmbeddings) tensors.push({ name: 'lm_head.weight', shape: [vocabSize, dim], data: dequantize(w.wcls) });
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw fileError(outDir, `tensor ${t.name} has ${t.data.length} values, its shape [${t.shape.join(', ')}] needs ${n}`);
  }

  try {
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'config.json'), JSON.stringify(hfConfig(model), null, 2) + '\n');
    await writeFile(join(outDir, 'tokenizer.json'), model.tokenizer.toJSON());
    const fh = await open(join(outDir, 'model.safetensors'), 'w');
    try {
      await fh.write(safetensorsHeader(tensors, { format: 'pt', source: `kloop convert of ${model.name}` }));
      for (const t of tensors) {
        const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        await fh.write(bytes);
      }
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof Error && e.name === 'KloopError') throw e;
    throw fileError(outDir, `cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}
