/**
 * RoPE row orders. kloop (like llama2.c and llama.cpp's llama arch) rotates ADJACENT pairs
 * (2i, 2i+1) inside each head. Hugging Face Llama checkpoints use rotate_half, pairing
 * (i, i + headDim/2), and store wq/wk (and bq/bk) rows permuted to match: per head, first the
 * "even" rows then the "odd" ones. So adjacent row 2i is HF row i and adjacent row 2i+1 is
 * HF row i + headDim/2.
 */

/** HF (rotate_half) row order -> adjacent-pair order. `cols` is the row length (1 for a bias). */
export function unpermuteRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  return reorder(w, nHeads, headDim, cols, false);
}

/** Adjacent-pair row order -> HF (rotate_half) row order; the inverse of unpermuteRows. */
export function permuteRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  return reorder(w, nHeads, headDim, cols, true);
}

function reorder(w: Float32Array, nHeads: number, headDim: number, cols: number, toHF: boolean): Float32Array {
  if (w.length !== nHeads * headDim * cols || headDim % 2 !== 0) {
    throw new Error(`permute: ${w.length} values do not form ${nHeads} heads x ${headDim} rows x ${cols}`);
  }
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (const [adj, hf] of [
        [2 * i, i],
        [2 * i + 1, i + half],
      ] as const) {
        const a = (h * headDim + adj) * cols;
        const b = (h * headDim + hf) * cols;
        if (toHF) out.set(w.subarray(a, a + cols), b);
        else out.set(w.subarray(b, b + cols), a);
      }
    }
  }
  return out;
}
