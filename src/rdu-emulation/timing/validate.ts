/**
 * The timing model checked against the paper: every case that depends on the calibrated
 * synchronization terms, marked `fit` (the calibration was fitted to it, so agreement proves
 * little) or `held-out` (not used by the fit: the real test). `kloop timing-model --validate`
 * prints them; docs/timing-model.md reports them, misses included.
 */
import { PRESETS } from '../presets/index.ts';
import { FIT_CASES, TARGETS, geoMean, loopingSpeedups, orchestrationSpeedups, paperConfigs, percentsOfPeak, t6TokensPerSecond } from './calibration.ts';
import { callStructureFor } from './calls.ts';
import { predictMode, predictPrefill } from './model.ts';
import { DGX_H100, DGX_H100_SYNC, SN40L_HOST_ORCHESTRATED_SYNC, SN40L_SYNC, sn40l } from './systems.ts';

export interface ValidationCase {
  id: string;
  role: 'fit' | 'held-out';
  what: string;
  /** The published figure (a value, or a [low, high] band). */
  paper: number | [number, number];
  /** What the model gives (a value, or the [min, max] over the configurations of a band). */
  model: number | [number, number];
  /** Relative tolerance of a value (a band is checked as is). */
  tolerance?: number;
  pass: boolean;
}

const within = (x: number, target: number, tol: number): boolean => Math.abs(x - target) <= tol * Math.abs(target);

export function validationCases(): ValidationCase[] {
  const at4k = { batch: 1, context: 4096, outputTokens: 0 };
  const llama8b = PRESETS['llama-3.1-8b']!;
  const looping = loopingSpeedups(SN40L_SYNC);
  const orchestration = orchestrationSpeedups(SN40L_HOST_ORCHESTRATED_SYNC);
  const peaks = percentsOfPeak(SN40L_SYNC);
  const dgx8b = predictMode(llama8b, at4k, DGX_H100, DGX_H100_SYNC, 'per-op').tokensPerSecond;
  const vsDgx = (sockets: number): number =>
    Math.max(
      ...[llama8b, PRESETS['llama-3.1-70b']!].map(
        (s) => predictMode(s, at4k, sn40l(sockets), SN40L_SYNC, 'looped').tokensPerSecond / predictMode(s, at4k, DGX_H100, DGX_H100_SYNC, 'per-op').tokensPerSecond,
      ),
    );
  const prefill = Math.max(
    ...paperConfigs().map(({ model, system }) => {
      const hw = predictPrefill(model, 8192, system, SN40L_SYNC, callStructureFor('per-layer'));
      const host = predictPrefill(model, 8192, system, SN40L_HOST_ORCHESTRATED_SYNC, callStructureFor('per-layer'));
      return host.seconds / hw.seconds;
    }),
  );
  const value = (id: string, what: string, paper: number, model: number, tolerance: number) => ({ id, what, paper, model, tolerance, pass: within(model, paper, tolerance) });
  const cases: Omit<ValidationCase, 'role'>[] = [
    value('T4', 'DGX H100, Llama-3.1-8B at 4K, TensorRT-LLM: tokens/s', TARGETS.t4DgxTokensPerSecond, dgx8b, 0.01),
    value('T6', 'SN40L-16, Llama-3.1-8B at 8K, looped: tokens/s', TARGETS.t6TokensPerSecond, t6TokensPerSecond(SN40L_SYNC), 0.15),
    value('T9-geomean', 'looping on/off, paper-scale models x {8, 16} sockets: geometric mean', TARGETS.t9GeoMeanSpeedup, geoMean(looping), 0.1),
    value('T12-max', 'hardware / host orchestration, decode: maximum speedup', TARGETS.t12MaxDecodeSpeedup, Math.max(...orchestration), 0.1),
    value('T9-max', 'looping on/off, paper-scale models x {8, 16} sockets: maximum', TARGETS.t9MaxSpeedup, Math.max(...looping), 0.1),
    value('T12-min', 'hardware / host orchestration, decode: minimum speedup', TARGETS.t12MinDecodeSpeedup, Math.min(...orchestration), 0.1),
    value('T8-8', 'SN40L-8 / DGX H100, 8B and 70B at 4K: maximum ratio', 2.0, vsDgx(8), 0.1),
    value('T8-16', 'SN40L-16 / DGX H100, 8B and 70B at 4K: maximum ratio', 3.7, vsDgx(16), 0.1),
    {
      id: 'T10', what: 'looped % of peak bandwidth, every paper configuration, in the band',
      paper: [TARGETS.t10MinPercentOfPeak, TARGETS.t10MaxPercentOfPeak], model: [Math.min(...peaks), Math.max(...peaks)],
      pass: Math.min(...peaks) >= TARGETS.t10MinPercentOfPeak && Math.max(...peaks) <= TARGETS.t10MaxPercentOfPeak,
    },
    { id: 'T12-prefill', what: 'hardware / host orchestration, 8K-token prefill: at most', paper: 1.1, model: prefill, pass: prefill <= 1.1 },
  ];
  return cases.map((c) => ({ ...c, role: (FIT_CASES as readonly string[]).includes(c.id) ? 'fit' : 'held-out' }));
}

/** The cases as a table: id, role, paper, model, pass. */
export function formatValidation(cases: ValidationCase[]): string {
  const num = (x: number | [number, number]): string => (Array.isArray(x) ? `${fmt(x[0])}..${fmt(x[1])}` : fmt(x));
  const lines = cases.map(
    (c) => `${c.id.padEnd(12)} ${c.role.padEnd(9)} ${num(c.paper).padStart(14)} ${num(c.model).padStart(14)}  ${c.pass ? 'pass' : 'MISS'}  ${c.what}`,
  );
  const held = cases.filter((c) => c.role === 'held-out');
  return [
    `${'case'.padEnd(12)} ${'role'.padEnd(9)} ${'paper'.padStart(14)} ${'model'.padStart(14)}  result`,
    ...lines,
    `held out: ${held.filter((c) => c.pass).length} of ${held.length} pass`,
    '',
  ].join('\n');
}

function fmt(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toFixed(2);
}
