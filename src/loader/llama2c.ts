/**
 * llama2.c legacy (v0) checkpoints: a 7 x int32 header (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate classifier follows),
 * then float32 tensors tok_emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * the legacy freq_cis_real/imag (skipped), and wcls when vocab_size was negative.
 */
import type { LayerWeights, LoadedModel, ModelConfig, ModelWeights, Tokenizer } from './types.ts';
import { parseLlama2cTokenizer, spmTokenizer, type JsonTokenizer, type SpmVocab } from './tokenizer.ts';
import { BinaryFile, LIMITS, checkInt, fileError, modelName, need, readSmallFile, validateConfig } from './util.ts';

const HEADER_BYTES = 28;
/** llama2.c export versions >= 1 start with this magic ("ak42"). */
const MAGIC_AK42 = 0x616b3432;

export interface Llama2cHeader {
  config: ModelConfig;
  /** A separate classifier follows the freq_cis tables. */
  sharedClassifier: boolean;
  /** The file size the header implies. */
  expectedBytes: number;
}

/** Parse and validate the header against the file size; allocates nothing large. */
export function parseLlama2cHeader(path: string, header: Uint8Array, fileBytes: number): Llama2cHeader {
  need(header.length >= HEADER_BYTES && fileBytes >= HEADER_BYTES, path, `truncated llama2.c checkpoint (${fileBytes} bytes, header needs ${HEADER_BYTES})`);
  const dv = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  const h = Array.from({ length: 7 }, (_, i) => dv.getInt32(4 * i, true));
  if (dv.getUint32(0, true) === MAGIC_AK42) {
    throw fileError(path, 'llama2.c export version >= 1 ("ak42" magic) is not supported; export the legacy v0 format');
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = h as [number, number, number, number, number, number, number];
  checkInt(path, 'dim', dim, 1, LIMITS.dim);
  checkInt(path, 'hidden_dim', hiddenDim, 1, LIMITS.hiddenDim);
  checkInt(path, 'n_layers', nLayers, 1, LIMITS.nLayers);
  checkInt(path, 'n_heads', nHeads, 1, Math.min(LIMITS.nHeads, dim));
  checkInt(path, 'n_kv_heads', nKvHeads, 1, nHeads);
  need(vocabRaw !== 0, path, 'bad vocab_size 0');
  const vocabSize = Math.abs(vocabRaw);
  checkInt(path, 'vocab_size', vocabSize, 1, LIMITS.vocabSize);
  checkInt(path, 'seq_len', seqLen, 1, LIMITS.seqLen);
  need(dim % nHeads === 0, path, `dim ${dim} is not divisible by n_heads ${nHeads}`);
  need(nHeads % nKvHeads === 0, path, `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  const headDim = dim / nHeads;
  const config: ModelConfig = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    vocabSize,
    seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    attentionBias: false,
    tiedEmbeddings: vocabRaw > 0,
    bosId: 1,
    eosId: 2,
  };
  validateConfig(path, config);
  const kvDim = nKvHeads * headDim;
  const floats =
    vocabSize * dim +
    nLayers * (dim + dim * dim + 2 * kvDim * dim + dim * dim + dim + 3 * hiddenDim * dim) +
    dim +
    seqLen * headDim + // freq_cis_real + freq_cis_imag: 2 x seq_len x head_size/2
    (vocabRaw < 0 ? vocabSize * dim : 0);
  const expectedBytes = HEADER_BYTES + 4 * floats;
  need(
    fileBytes === expectedBytes,
    path,
    fileBytes < expectedBytes
      ? `truncated llama2.c checkpoint: the header implies ${expectedBytes} bytes, the file has ${fileBytes}`
      : `llama2.c checkpoint has ${fileBytes - expectedBytes} unexpected trailing bytes (the header implies ${expectedBytes}): wrong header or not a v0 checkpoint`,
  );
  return { config, sharedClassifier: vocabRaw > 0, expectedBytes };
}

/** Read the weights of a llama2.c v0 checkpoint (a path, or a BinaryFile such as BinaryFile.fromBytes). */
export async function readLlama2cWeights(file: string | BinaryFile): Promise<{ config: ModelConfig; weights: ModelWeights }> {
  const f = typeof file === 'string' ? await BinaryFile.open(file) : file;
  const path = f.path;
  try {
    const header = await f.bytes(0, Math.min(HEADER_BYTES, f.size), 'header');
    const { config, sharedClassifier } = parseLlama2cHeader(path, header, f.size);
    const { dim, hiddenDim, nLayers, headDim, nKvHeads, vocabSize, seqLen } = config;
    const kvDim = nKvHeads * headDim;
    let off = HEADER_BYTES;
    const next = async (count: number, name: string) => {
      const a = await f.f32(off, count, name);
      off += count * 4;
      return a;
    };
    const perLayer = async (size: number, name: string) => {
      const out: Float32Array[] = [];
      for (let l = 0; l < nLayers; l++) out.push(await next(size, `${name}[${l}]`));
      return out;
    };
    const tokEmb = await next(vocabSize * dim, 'token_embedding_table');
    const rmsAtt = await perLayer(dim, 'rms_att_weight');
    const wq = await perLayer(dim * dim, 'wq');
    const wk = await perLayer(kvDim * dim, 'wk');
    const wv = await perLayer(kvDim * dim, 'wv');
    const wo = await perLayer(dim * dim, 'wo');
    const rmsFfn = await perLayer(dim, 'rms_ffn_weight');
    const w1 = await perLayer(hiddenDim * dim, 'w1');
    const w2 = await perLayer(dim * hiddenDim, 'w2');
    const w3 = await perLayer(hiddenDim * dim, 'w3');
    const finalNorm = await next(dim, 'rms_final_weight');
    off += seqLen * headDim * 4; // legacy freq_cis_real / freq_cis_imag
    const wcls = sharedClassifier ? tokEmb : await next(vocabSize * dim, 'wcls');
    const layers: LayerWeights[] = [];
    for (let l = 0; l < nLayers; l++) {
      layers.push({
        attnNorm: rmsAtt[l]!,
        wq: wq[l]!,
        wk: wk[l]!,
        wv: wv[l]!,
        wo: wo[l]!,
        ffnNorm: rmsFfn[l]!,
        w1: w1[l]!,
        w2: w2[l]!,
        w3: w3[l]!,
      });
    }
    return { config, weights: { tokEmb, layers, finalNorm, wcls } };
  } finally {
    await f.close();
  }
}

/**
 * Load a llama2.c checkpoint (a path, or a BinaryFile of bytes in memory) with its tokenizer:
 * `tokenizer` is a llama2.c tokenizer .bin path (vocab_size tokens are read from it) or an
 * already built Tokenizer.
 */
export async function loadLlama2c(file: string | BinaryFile, tokenizer: string | Tokenizer): Promise<LoadedModel> {
  const path = typeof file === 'string' ? file : file.path;
  const { config, weights } = await readLlama2cWeights(file);
  if (typeof tokenizer === 'string') tokenizer = await loadLlama2cTokenizer(tokenizer, config.vocabSize);
  need(
    tokenizer.vocabSize <= config.vocabSize,
    path,
    `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${config.vocabSize}`,
  );
  return { name: modelName(path), source: path, format: 'llama2c', config, weights, tokenizer };
}

/** Read a llama2.c tokenizer .bin file (see parseLlama2cTokenizer). */
export async function readLlama2cTokenizer(path: string, count?: number): Promise<SpmVocab> {
  return parseLlama2cTokenizer(await readSmallFile(path, 1 << 28), path, count);
}

/** Load a llama2.c tokenizer .bin as a Tokenizer (through a generated tokenizer.json). */
export async function loadLlama2cTokenizer(path: string, count?: number): Promise<JsonTokenizer> {
  return spmTokenizer(await readLlama2cTokenizer(path, count), path);
}
