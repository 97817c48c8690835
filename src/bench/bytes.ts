/**
 * Bytes one decode step moves on the device, counted from the model's shapes as the engine's
 * kernels touch them (weights in their packed encodings when the caller gives their size, else f32):
 *   weights read      every layer's norms and matrices, the final norm, the classifier (the whole
 *                     vocab x dim table), one embedding row and one RoPE row
 *   KV read           each layer's K and V for positions 0..pos
 *   written           the activations each stage writes once (x, xn, q|k|v, att, h, g, logits,
 *                     the token) and the new K, V entries
 * A replicated stage's copies (every workgroup computes the whole small result) count once.
 */
import type { ModelConfig } from '../loader/types.ts';

export interface StepBytes {
  weights: number;
  kvRead: number;
  written: number;
  total: number;
}

const F32 = 4;

/**
 * Bytes of the step at position `pos` (KV holds pos + 1 positions once this step appends).
 * `weightBytes`: the weight bytes a step reads in the device's packed encodings (Layout's
 * weightBytesPerToken); default: every weight in f32.
 */
export function stepBytes(c: ModelConfig, pos: number, weightBytes?: number): StepBytes {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const qkvRows = qDim + 2 * kvDim;
  const perLayerWeights = c.dim + qkvRows * c.dim + (c.attentionBias ? qkvRows : 0) + c.dim * qDim + c.dim + 2 * c.hiddenDim * c.dim + c.dim * c.hiddenDim;
  const weights = weightBytes ?? (c.nLayers * perLayerWeights + c.dim + c.vocabSize * c.dim + c.dim + c.headDim) * F32;
  const kvRead = c.nLayers * 2 * (pos + 1) * kvDim * F32;
  const perLayerWritten = c.dim + qkvRows + qDim + qDim + c.dim + c.dim + c.hiddenDim + c.dim + 2 * kvDim;
  const written = (c.dim + c.nLayers * perLayerWritten + c.dim + c.vocabSize + 1) * F32;
  return { weights, kvRead, written, total: weights + kvRead + written };
}

/** Mean bytes per step over `steps` steps from position `pos0`. */
export function meanStepBytes(c: ModelConfig, pos0: number, steps: number, weightBytes?: number): StepBytes {
  const acc: StepBytes = { weights: 0, kvRead: 0, written: 0, total: 0 };
  for (let p = pos0; p < pos0 + steps; p++) {
    const b = stepBytes(c, p, weightBytes);
    acc.weights += b.weights;
    acc.kvRead += b.kvRead;
    acc.written += b.written;
    acc.total += b.total;
  }
  return { weights: acc.weights / steps, kvRead: acc.kvRead / steps, written: acc.written / steps, total: acc.total / steps };
}
