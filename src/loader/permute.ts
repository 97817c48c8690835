/**
 * RoPE row orders. kloop (like llama2.c and llama.cpp's llama arch) rotates ADJACENT pairs
 * (2i, 2i+1) inside each head. Hugging Face Llama checkpoints use rotate_half, pairing
 * (i, i + headDim/2), and store wq/wk (and bq/bk) rows permuted to match: per head, first the
 * "even" rows then the "odd" ones. So adjacent row 2i is HF row i and adjacent row 2i+1 is
 * HF row i + headDim/2.
 *
 * The permutation moves whole rows, so it works on any row-major encoding: float32 values, or
 * the bytes of a PackedMatrix (each row a whole number of blocks).
 */
import type { Matrix, PackedMatrix } from './types.ts';
import { isPacked } from './quant.ts';

/** HF (rotate_half) row order -> adjacent-pair order. `cols` is the row length (1 for a bias). */
export function unpermuteRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  return reorder(w, nHeads, headDim, cols, false);
}

/** Adjacent-pair row order -> HF (rotate_half) row order; the inverse of unpermuteRows. */
export function permuteRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  return reorder(w, nHeads, headDim, cols, true);
}

/** unpermuteRows for a matrix in any encoding (a packed matrix moves its rows' bytes). */
export function unpermuteMatrix<M extends Matrix>(m: M, nHeads: number, headDim: number, cols: number): M {
  return reorderMatrix(m, nHeads, headDim, cols, false);
}

/** permuteRows for a matrix in any encoding; the inverse of unpermuteMatrix. */
export function permuteMatrix<M extends Matrix>(m: M, nHeads: number, headDim: number, cols: number): M {
  return reorderMatrix(m, nHeads, headDim, cols, true);
}

function reorderMatrix<M extends Matrix>(m: M, nHeads: number, headDim: number, cols: number, toHF: boolean): M {
  if (!isPacked(m)) return reorder(m, nHeads, headDim, cols, toHF) as M;
  const p: PackedMatrix = m;
  if (p.rows !== nHeads * headDim || p.cols !== cols || p.data.byteLength % p.rows !== 0) {
    throw new Error(`permute: a ${p.type} matrix ${p.rows}x${p.cols} does not form ${nHeads} heads x ${headDim} rows x ${cols}`);
  }
  const rowBytes = p.data.byteLength / p.rows;
  return { type: p.type, rows: p.rows, cols: p.cols, data: reorder(p.data, nHeads, headDim, rowBytes, toHF) } as M;
}

function reorder<A extends Float32Array | Uint8Array>(w: A, nHeads: number, headDim: number, cols: number, toHF: boolean): A {
  if (w.length !== nHeads * headDim * cols || headDim % 2 !== 0) {
    throw new Error(`permute: ${w.length} values do not form ${nHeads} heads x ${headDim} rows x ${cols}`);
  }
  const out = (w instanceof Float32Array ? new Float32Array(w.length) : new Uint8Array(w.length)) as A;
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
