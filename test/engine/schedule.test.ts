import { describe, expect, it } from 'vitest';
import { planLooped } from '../../src/engine/compose.ts';
import {
  LAYER_STAGES, buildSchedule, dispatchesPerStep, layerSignature, loopLayers, planBarriers,
} from '../../src/engine/schedule.ts';
import type { ModelConfig } from '../../src/loader/types.ts';

const cfg: ModelConfig = {
  dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8, vocabSize: 512, seqLen: 512,
  normEps: 1e-5, ropeTheta: 10000, attentionBias: false, tiedEmbeddings: true, bosId: 1, eosId: 2,
};

describe('schedule', () => {
  it('describes a step as prologue, one call per layer, epilogue', () => {
    const s = buildSchedule(cfg);
    expect(s.calls.map((c) => c.kind)).toEqual(['prologue', 'layer', 'layer', 'layer', 'layer', 'layer', 'epilogue', 'epilogue']);
    expect(s.calls[1].stages).toEqual(LAYER_STAGES);
    expect(dispatchesPerStep(s, 'per-op')).toBe(1 + 8 * 5 + 3);
    expect(dispatchesPerStep(s, 'per-layer')).toBe(5 + 3);
  });

  it('loops identical layers into one call over stacked weights', () => {
    const { schedule, notes } = loopLayers(buildSchedule(cfg));
    expect(schedule.calls.map((c) => c.kind)).toEqual(['prologue', 'loop', 'epilogue', 'epilogue']);
    const loop = schedule.calls[1];
    expect(loop.kind === 'loop' && loop.layers).toEqual([0, 1, 2, 3, 4]);
    expect(notes.join('\n')).toMatch(/looped 5 calls decoder\[0\]..decoder\[4\]/);
  });

  it('splits a stack whose layers differ into identical runs', () => {
    const wide = layerSignature({ ...cfg, hiddenDim: 256 });
    const sigs = [0, 1, 2, 3, 4].map((n) => (n < 3 ? layerSignature(cfg) : wide));
    const { schedule, notes } = loopLayers(buildSchedule(cfg, sigs));
    const loops = schedule.calls.filter((c) => c.kind === 'loop');
    expect(loops.map((c) => c.kind === 'loop' && c.layers)).toEqual([[0, 1, 2], [3, 4]]);
    expect(notes.some((n) => n.startsWith('split at decoder[3]'))).toBe(true);
  });

  it('leaves a lone layer as a per-layer call', () => {
    const sigs = ['a', 'b', 'a', 'a', 'c'];
    const { schedule } = loopLayers(buildSchedule(cfg, sigs));
    expect(schedule.calls.map((c) => c.kind)).toEqual(['prologue', 'layer', 'layer', 'loop', 'layer', 'epilogue', 'epilogue']);
  });

  it('places grid barriers only where data crosses workgroups', () => {
    // One layer as its own dispatch: barriers before rope_append, wo_residual, ffn_norm, down_residual.
    const { before } = planBarriers(LAYER_STAGES);
    expect(LAYER_STAGES.filter((_, i) => before[i])).toEqual(['rope_append', 'wo_residual', 'ffn_norm', 'down_residual']);
    // Looped: the same four plus one at each layer boundary; none between sample and the next embedding.
    const plan = planLooped(['embed'], [...LAYER_STAGES], ['final_norm', 'classifier', 'sample']);
    expect(plan.prologue).toEqual([{ first: false, later: false }]);
    expect(plan.body[0]).toEqual({ first: false, later: true }); // attn_norm after the previous layer's down
    expect(plan.epilogue).toEqual([true, false, true]);
    expect(plan.perToken(5)).toBe(5 * 4 + 4 + 2);
  });
});
