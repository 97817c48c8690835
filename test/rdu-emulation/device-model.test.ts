import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { type DeviceParameters, type ModeSpec, deviceSync, modeKernelSeconds, modeStructure, predictMode, stageCallsPerToken, stageKernelSeconds } from '../../src/rdu-emulation/device-model/model.ts';
import type { DeviceMeasurements } from '../../src/rdu-emulation/device-model/microbench.ts';
import { STAGES, type StageId } from '../../src/engine/schedule.ts';
import { measureDevice } from '../../src/rdu-emulation/device-model/microbench.ts';
import { buildSchedule } from '../../src/engine/schedule.ts';
import { syntheticModel } from '../../src/loader/synthetic.ts';
import { loadModel } from '../../src/loader/index.ts';
import { createExecutor } from '../../src/engine/executor.ts';
import type { GpuExecutor } from '../../src/engine/gpu-executor.ts';
import { testDeviceOrSkip } from '../helpers/gpu.ts';
import { modelsDir } from '../helpers/paths.ts';

const P: DeviceParameters = {
  name: 'test', dispatchSeconds: 25e-6, roundTripSeconds: 150e-6, copyBytesPerSecond: 4e9, matvecBytesPerSecond: 3e9,
  fusedMatvecBytesPerSecond: 2e9, barrierSeconds: 5e-6, discoverSeconds: 10e-6, kernelSeconds: { perOp: 1e-3, fused: 1.5e-3 },
};
const cfg = syntheticModel({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8, vocabSize: 512, seqLen: 512, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true }).config;
const schedule = buildSchedule(cfg);
const modes: ModeSpec[] = [{ mode: 'per-op', k: 1 }, { mode: 'per-layer', k: 1 }, { mode: 'looped', k: 1 }, { mode: 'looped', k: 16 }];
const predict = (p: DeviceParameters, m: ModeSpec, ctx = 32, barriers = 26) => predictMode(cfg, 't', p, m, modeStructure(schedule, m, m.mode === 'per-op' ? undefined : barriers), ctx).tokensPerSecond;

describe('device model predictions', () => {
  it('scales the summed stage times by the in-context factor of a whole token', () => {
    const ms = (median: number) => ({ median, min: median, max: median, runs: 1 });
    const stageSeconds = Object.fromEntries((Object.keys(STAGES) as StageId[]).map((id) => [id, { perOp: ms(2e-6), fused: ms(1e-6) }])) as DeviceMeasurements['stageSeconds'];
    const calls = [...stageCallsPerToken(schedule).values()].reduce((a, b) => a + b, 0);
    const hot = { stageSeconds } as DeviceMeasurements;
    const plain = stageKernelSeconds(schedule, hot);
    expect(plain.inContext).toBe(1);
    expect(plain.fused).toBeCloseTo(calls * 1e-6, 15);
    const k = stageKernelSeconds(schedule, { ...hot, tokenStagesSeconds: ms(calls * 1.5e-6) });
    expect(k.inContext).toBeCloseTo(1.5, 12);
    expect(k.fused).toBeCloseTo(calls * 1.5e-6, 15);
    expect(k.perOp).toBeCloseTo(calls * 3e-6, 15);
  });

  it('takes the launch off per-op calls, or uses the measured per-op token and cold start', () => {
    const ms = (median: number) => ({ median, min: median, max: median, runs: 1 });
    const stageSeconds = Object.fromEntries((Object.keys(STAGES) as StageId[]).map((id) => [id, { perOp: ms(2e-6), fused: ms(1e-6) }])) as DeviceMeasurements['stageSeconds'];
    const calls = [...stageCallsPerToken(schedule).values()].reduce((a, b) => a + b, 0);
    const m = { stageSeconds, dispatchSeconds: ms(0.5e-6) } as DeviceMeasurements;
    expect(stageKernelSeconds(schedule, m).perOp).toBeCloseTo(calls * 1.5e-6, 15);
    // A launch longer than a measured dispatch leaves no negative work.
    expect(stageKernelSeconds(schedule, m, 3e-6).perOp).toBe(0);
    const k = stageKernelSeconds(schedule, { ...m, perOpTokenSeconds: ms(7e-4), tokenColdSeconds: ms(2e-4), perLayerTokenSeconds: ms(3e-4) });
    expect(k.perOp).toBe(7e-4);
    expect(k.cold).toBe(2e-4);
    expect(k.perLayer).toBe(3e-4);
    expect(stageKernelSeconds(schedule, m).cold).toBeUndefined();
  });

  it('charges the cold start to per-layer tokens and to one token in K when looped', () => {
    const p = { ...P, kernelSeconds: { perOp: 3e-3, fused: 1e-3, cold: 1.8e-3 } };
    expect(modeKernelSeconds(p, modes[0]!)).toBe(3e-3);
    expect(modeKernelSeconds(p, modes[1]!)).toBe(1.8e-3);
    expect(modeKernelSeconds(p, modes[2]!)).toBeCloseTo(1.8e-3, 15);
    expect(modeKernelSeconds(p, modes[3]!)).toBeCloseTo(1e-3 + 0.8e-3 / 16, 15);
    // A measured per-layer token is per-layer's term.
    expect(modeKernelSeconds({ ...P, kernelSeconds: { ...p.kernelSeconds, perLayer: 2.5e-3 } }, modes[1]!)).toBe(2.5e-3);
    // Without a cold figure every fused mode runs at the fused rate.
    for (const m of modes.slice(1)) expect(modeKernelSeconds(P, m)).toBe(P.kernelSeconds.fused);
    expect(predictMode(cfg, 't', p, modes[3]!, modeStructure(schedule, modes[3]!, 26), 10).kernelSeconds).toBeCloseTo(1e-3 + 0.8e-3 / 16, 12);
  });

  it('follows the schedule: per-op dispatches per token, L + 3 per layer, 1/K looped', () => {
    expect(modeStructure(schedule, modes[0]!).dispatchesPerToken).toBe(8 * 5 + 4);
    expect(modeStructure(schedule, modes[1]!).dispatchesPerToken).toBe(5 + 3);
    expect(modeStructure(schedule, modes[1]!).discoversPerToken).toBe(5);
    expect(modeStructure(schedule, modes[3]!, 26)).toMatchObject({ dispatchesPerToken: 1 / 16, submitsPerToken: 1 / 16, barriersPerToken: 26 });
    const s = deviceSync(P, modeStructure(schedule, modes[3]!, 26));
    expect(s.hostPerStep).toBeCloseTo(P.roundTripSeconds / 16, 12);
  });

  it('adds up kernel, dispatch, barrier and round-trip time', () => {
    const m = modes[1]!;
    const s = modeStructure(schedule, m, 20);
    const pr = predictMode(cfg, 't', P, m, s, 10);
    expect(pr.secondsPerToken).toBeCloseTo(pr.kernelSeconds + pr.dispatchSeconds + pr.barrierSeconds + pr.roundTripSeconds, 12);
    expect(pr.dispatchSeconds).toBeCloseTo(8 * P.dispatchSeconds + 5 * P.discoverSeconds, 12);
    expect(pr.barrierSeconds).toBeCloseTo(20 * P.barrierSeconds, 12);
    expect(pr.kernelSeconds).toBeCloseTo(P.kernelSeconds.fused, 12);
    expect(predictMode(cfg, 't', P, modes[0]!, modeStructure(schedule, modes[0]!), 10).kernelSeconds).toBeCloseTo(P.kernelSeconds.perOp, 12);
  });

  it('is monotone in every cost and in K', () => {
    for (const m of modes) {
      const base = predict(P, m);
      expect(Number.isFinite(base) && base > 0).toBe(true);
      expect(predict({ ...P, roundTripSeconds: 2 * P.roundTripSeconds }, m)).toBeLessThan(base);
      expect(predict({ ...P, kernelSeconds: { perOp: 0.5e-3, fused: 0.75e-3 } }, m)).toBeGreaterThan(base);
      if (m.mode !== 'looped' || m.k === 1) expect(predict({ ...P, dispatchSeconds: 2 * P.dispatchSeconds }, m)).toBeLessThan(base);
      if (m.mode !== 'per-op') expect(predict({ ...P, barrierSeconds: 2 * P.barrierSeconds }, m)).toBeLessThan(base);
      else expect(predict({ ...P, barrierSeconds: 2 * P.barrierSeconds }, m)).toBe(base);
    }
    let last = 0;
    for (const k of [1, 2, 4, 16, 64]) {
      const t = predict(P, { mode: 'looped', k });
      expect(t).toBeGreaterThan(last);
      last = t;
    }
  });

  it('orders the modes when boundaries dominate: per-op < per-layer < looped < looped:16', () => {
    const same = { ...P, kernelSeconds: { perOp: 1e-3, fused: 1e-3 } };
    const t = modes.map((m) => predict(same, m));
    expect(t[0]).toBeLessThan(t[1]!);
    expect(t[1]).toBeLessThan(t[2]!);
    expect(t[2]).toBeLessThan(t[3]!);
  });
});

const gpu = await testDeviceOrSkip('the microbenchmarks (GPU adapter)');

describe.skipIf(!gpu)('microbenchmarks (GPU adapter)', () => {
  it('return finite positive figures on the adapter', async () => {
    const model = await loadModel(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
    const ex = (await createExecutor(model, 'looped', async () => gpu!, {})) as GpuExecutor;
    try {
      const m = await measureDevice({ device: gpu!.device, layout: ex.layout, fusedGroups: ex.stats.workgroups, cpu: gpu!.cpu, wait: gpu!.wait }, { repeats: 3, copyBytes: 8 * 2 ** 20 });
      for (const k of ['dispatchSeconds', 'roundTripSeconds', 'copyBytesPerSecond', 'matvecBytesPerSecond', 'fusedMatvecBytesPerSecond', 'barrierSeconds', 'discoverSeconds', 'barrierParticipants', 'stepParticipants'] as const) {
        for (const v of [m[k].median, m[k].min, m[k].max]) {
          expect(Number.isFinite(v), k).toBe(true);
          expect(v, k).toBeGreaterThan(0);
        }
      }
      expect(m.barrierParticipants.max).toBeLessThanOrEqual(m.barrierGroups);
      for (const [id, st] of Object.entries(m.stageSeconds)) {
        expect(Number.isFinite(st.perOp.median) && st.perOp.median > 0, id).toBe(true);
        expect(Number.isFinite(st.fused.median) && st.fused.median > 0, id).toBe(true);
      }
      // A whole token's stages in order: finite, positive, and the factor the model applies.
      expect(Number.isFinite(m.tokenStagesSeconds.median) && m.tokenStagesSeconds.median > 0).toBe(true);
      const k = stageKernelSeconds(ex.schedule, m);
      expect(k.fused).toBeCloseTo(m.tokenStagesSeconds.median, 12);
      // The per-op token and the cold token: finite, positive, what the model uses.
      for (const v of [m.perOpTokenSeconds.median, m.tokenColdSeconds.median]) expect(Number.isFinite(v) && v > 0).toBe(true);
      expect(k.perOp).toBe(m.perOpTokenSeconds.median);
      expect(k.cold).toBe(m.tokenColdSeconds.median);
      // The per-layer token is measured where the fused kernels run several workgroups; with one
      // (CPU adapters) per-layer's work is the cold token.
      const p = { ...P, kernelSeconds: k };
      if (ex.stats.workgroups > 1) {
        expect(Number.isFinite(m.perLayerTokenSeconds!.median) && m.perLayerTokenSeconds!.median > 0).toBe(true);
        expect(modeKernelSeconds(p, modes[1]!)).toBe(m.perLayerTokenSeconds!.median);
      } else {
        expect(m.perLayerTokenSeconds).toBeUndefined();
        expect(modeKernelSeconds(p, modes[1]!)).toBe(m.tokenColdSeconds.median);
      }
    } finally {
      ex.destroy();
    }
  }, 600_000);
});
