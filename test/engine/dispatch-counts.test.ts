/**
 * What each mode's name promises, counted on the executor through the session: dispatches and
 * submits per token are 8L+4 and 1 (per-op), L+3 and 1 (per-layer), 1 and 1 (looped, K = 1),
 * 1/K and 1/K (looped, K tokens per dispatch). stories260K has L = 5 layers.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Session } from '../../src/engine/session.ts';
import { loadModel } from '../../src/loader/index.ts';
import { testDevice } from '../helpers/gpu.ts';
import { modelsDir } from '../helpers/paths.ts';

const model = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
const L = model.config.nLayers;
const session = new Session(model, { device: testDevice, log: () => undefined });
afterAll(() => session.dispose());

describe(`dispatches and submits per token (L = ${L})`, () => {
  it.each([
    ['per-op', 1, 8 * L + 4, 1],
    ['per-layer', 1, L + 3, 1],
    ['looped', 1, 1, 1],
    ['looped', 4, 1 / 4, 1 / 4],
  ] as const)('%s, K = %i: %f dispatches and %f submits per token', async (mode, k, dispatches, submits) => {
    const r = await session.timeDecode({ mode, tokensPerDispatch: k, tokens: 16 });
    expect(r.fallbacks).toBe(0);
    expect(r.dispatchesPerToken).toBe(dispatches);
    expect(r.submitsPerToken).toBe(submits);
  }, 600_000);
});
