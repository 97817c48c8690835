/**
 * The layout of the batched forward: T tokens (a CHUNK) per weight read. It is the decode
 * layout (same weights, same KV cache) plus T-row activation regions appended after the decode
 * ones in the `act` buffer, and a wider `xs` tile holding the T input vectors of a matmul.
 *
 *   B_X, B_H, B_XN   (T, DIM)        residual stream, attention out + residual, normed input
 *   B_Q              (T, QKVR)       q | k | v of each token (QKVR = QD + 2 KVD)
 *   B_ATT            (T, QD)         attention output
 *   B_G              (T, HIDDEN)     silu(gate) * up
 *   B_LOGITS         (T, VOCAB)      logits of every token of the chunk
 *   xs               (T, BTS)        workgroup tile: BT input columns of each of the T tokens
 *                                    (BTS = BT, or BT + BT / 32 with the GPU style's padding)
 *
 * The chunk size is chosen per adapter: the largest power of two T <= the wanted size whose tile fits the
 * adapter's workgroup memory (beside the attention scores) with BT >= 32 columns.
 */
import { KloopError } from '../errors.ts';
import { type Layout, MAX_TOKENS_PER_DISPATCH, stagedFit, stagedWords } from './layout.ts';

export interface BatchLayout {
  /** The decode layout with the batched constants added (TILE is the xs size, CHUNK * BT). */
  layout: Layout;
  /** Most tokens one batched pass processes (T). */
  chunk: number;
  /** Input columns of each token staged per matmul pass (BT). */
  tileCols: number;
  /** Words of the `act` buffer: the decode regions and the batched ones. */
  actWords: number;
}

const align = (n: number, a = 64): number => Math.ceil(n / a) * a;

/**
 * Tokens per batched pass wanted by default: CPU adapters (lavapipe) and GPUs. On CPU adapters
 * `cpuWide` is taken where it keeps the model's width whole in the tile (defaultChunk).
 */
export const DEFAULT_CHUNK = { cpu: 16, cpuWide: 32, gpu: 32 } as const;

/**
 * The chunk wanted when none is given. CPU adapters: 32 tokens where the tile still holds whole
 * input rows of the model's width (max(dim, QD)), else 16. Measured on lavapipe in one process
 * (256-token prefill, medians of 20): stories260K 32 tokens 12616 and 12676 against 16 tokens
 * 9007 and 10130 tokens/s; the stories15M shape, where 32 tokens split its 288-wide rows into
 * tiles, 175 against 405 (so 16); SwiftShader, stories260K, 829 against 789.
 */
export function defaultChunk(base: Layout, workgroupStorage: number, cpu: boolean): number {
  if (!cpu) return DEFAULT_CHUNK.gpu;
  const wide = batchLayout(base, workgroupStorage, DEFAULT_CHUNK.cpuWide);
  const width = Math.max(base.config.dim, base.consts.QD);
  return wide.chunk === DEFAULT_CHUNK.cpuWide && wide.tileCols >= width ? DEFAULT_CHUNK.cpuWide : DEFAULT_CHUNK.cpu;
}

export function batchLayout(base: Layout, workgroupStorage: number, want: number): BatchLayout {
  const c = base.config;
  const k = base.consts;
  if (!Number.isInteger(want) || want < 1) throw new KloopError(`prefill chunk: must be a positive integer (got ${want})`);
  // Workgroup memory besides xs: red (max(WG, T)), redi (WG) + scores (context) + qs (HD) + a few words.
  const fixed = (base.kernel.wg + Math.max(base.kernel.wg, MAX_TOKENS_PER_DISPATCH) + base.context + c.headDim + 16) * 4;
  const room = Math.floor((workgroupStorage - fixed) / 4);
  const maxCols = Math.max(c.dim, k.QD, c.hiddenDim);
  // Padded staging (the GPU style, like the decode matvec's): a word after every 32 columns of a token.
  const pad = base.kernel.padStaging === true;
  // A power of two; per-token normalisation factors live in `red` (RED_LEN = max(WG, T) entries).
  let chunk = 2 ** Math.floor(Math.log2(Math.min(want, MAX_TOKENS_PER_DISPATCH, base.context)));
  let tileCols = 0;
  for (; chunk >= 1; chunk = Math.floor(chunk / 2)) {
    const per = Math.floor(room / chunk);
    tileCols = per >= stagedWords(maxCols, pad) ? maxCols : Math.floor(stagedFit(per, pad) / 32) * 32;
    if (tileCols >= 32 || tileCols === maxCols) break;
  }
  if (chunk < 1 || tileCols < 1) {
    throw new KloopError(`the batched forward does not fit this adapter's ${workgroupStorage} bytes of workgroup memory; use a shorter context`);
  }
  const qkvRows = k.QD + 2 * k.KVD;
  let a = base.sizes.act;
  const region = (n: number): number => {
    const at = a;
    a = align(a + n);
    return at;
  };
  const consts: Record<string, number> = {
    ...k,
    TILE: chunk * tileCols,
    // Words of xs per token (BT, padded or not) and in all.
    BTS: stagedWords(tileCols, pad),
    XS_LEN: chunk * stagedWords(tileCols, pad),
    RED_LEN: Math.max(k.WG, chunk),
    CHUNK: chunk,
    BT: tileCols,
    QKVR: qkvRows,
    B_X: region(chunk * c.dim),
    B_H: region(chunk * c.dim),
    B_XN: region(chunk * c.dim),
    B_Q: region(chunk * qkvRows),
    B_ATT: region(chunk * k.QD),
    B_G: region(chunk * c.hiddenDim),
    B_LOGITS: region(chunk * c.vocabSize),
  };
  const layout: Layout = { ...base, tile: chunk * tileCols, consts, sizes: { ...base.sizes, act: a }, batch: { chunk, tileCols } };
  return { layout, chunk, tileCols, actWords: a };
}
