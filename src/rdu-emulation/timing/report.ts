/**
 * The `timing-model` report: a Table-1-style characterisation of one model and, per system and
 * execution mode, calls per token, tokens/s, roofline tokens/s and % of peak. The JSON form is
 * what `kloop timing-model --json` prints.
 */
import { EXECUTION_MODES, type ExecutionMode } from './calls.ts';
import { DEFAULT_FLOP_CONVENTION } from './flops.ts';
import { characterise, checkMeasurement, predictMode, type DecodePrediction, type ModelCharacterisation, type PredictOptions } from './model.ts';
import { DGX_H100, DGX_H100_SYNC, PUBLISHED, SN40L_SYNC, sn40l } from './systems.ts';
import type { FlopConvention, ModelShape, SyncCosts, SystemSpec, Workload } from './types.ts';

/** The model block of the report: Table 1's columns of the characterisation. */
export type ReportModel = Pick<
  ModelCharacterisation,
  'name' | 'params' | 'paramsGiB' | 'kvGiB' | 'gflopsPerToken' | 'gibPerToken' | 'flopsPerByte' | 'memoryBoundOnH100'
>;

export interface ReportSystemRow {
  system: string;
  mode: ExecutionMode;
  callsPerToken: number;
  tokensPerSecond: number;
  rooflineTokensPerSecond: number;
  percentOfPeak: number;
}

export interface ReportSpeedup {
  system: string;
  /** Looped over per-layer tokens/s on this system. */
  loopingOnVsOff: number;
  /** This system's looped tokens/s over DGX H100 per-op (TensorRT-LLM) tokens/s. */
  vsDgxH100: number;
}

export interface TimingReport {
  model: ReportModel;
  workload: Workload;
  flopConvention: string;
  systems: ReportSystemRow[];
  speedups: ReportSpeedup[];
  /** Flags: spills, configurations that do not fit, published figures above the plain-decode roofline. */
  notes: string[];
}

export interface ReportOptions {
  /** SN40L socket counts (default 1, 8, 16). */
  sockets?: number[];
  flopConvention?: FlopConvention;
  /** Override the synchronization terms (default: calibrated SN40L_SYNC / DGX_H100_SYNC). */
  sn40lSync?: SyncCosts;
  dgxSync?: SyncCosts;
  /** Override system parameters (applied to every SN40L system / to DGX H100). */
  sn40lOverrides?: Partial<SystemSpec>;
  dgxOverrides?: Partial<SystemSpec>;
}

export function timingReport(shape: ModelShape, workload: Workload, o: ReportOptions = {}): TimingReport {
  const opts: PredictOptions = { flopConvention: o.flopConvention ?? DEFAULT_FLOP_CONVENTION };
  const dgx: SystemSpec = { ...DGX_H100, ...o.dgxOverrides };
  const systems: Array<{ system: SystemSpec; sync: SyncCosts }> = [
    ...(o.sockets ?? [1, 8, 16]).map((n) => ({ system: sn40l(n, o.sn40lOverrides), sync: o.sn40lSync ?? SN40L_SYNC })),
    { system: dgx, sync: o.dgxSync ?? DGX_H100_SYNC },
  ];
  const c = characterise(shape, workload, dgx, opts);
  const rows: ReportSystemRow[] = [];
  const predictions = new Map<string, DecodePrediction>();
  const notes: string[] = [];
  for (const { system, sync } of systems) {
    for (const mode of EXECUTION_MODES) {
      const p = predictMode(shape, workload, system, sync, mode, opts);
      predictions.set(`${system.name}/${mode}`, p);
      rows.push({
        system: system.name,
        mode,
        callsPerToken: p.callsPerToken,
        tokensPerSecond: p.tokensPerSecond,
        rooflineTokensPerSecond: p.rooflineTokensPerSecond,
        percentOfPeak: p.percentOfPeak,
      });
    }
    const p = predictions.get(`${system.name}/looped`)!;
    if (p.spills) notes.push(`${system.name}: weights + KV exceed HBM; the excess is read from DDR`);
    if (p.doesNotFit) notes.push(`${system.name}: weights + KV exceed device memory; prediction not realisable`);
  }
  const dgxPerOp = predictions.get(`${dgx.name}/per-op`)!;
  const speedups = systems.map(({ system }) => ({
    system: system.name,
    loopingOnVsOff:
      predictions.get(`${system.name}/looped`)!.tokensPerSecond / predictions.get(`${system.name}/per-layer`)!.tokensPerSecond,
    vsDgxH100: predictions.get(`${system.name}/looped`)!.tokensPerSecond / dgxPerOp.tokensPerSecond,
  }));
  for (const pub of PUBLISHED) {
    if (pub.model !== shape.name || pub.context !== workload.context || pub.batch !== workload.batch) continue;
    const mode = pub.system === dgx.name ? 'per-op' : 'looped';
    const p = predictions.get(`${pub.system}/${mode}`);
    if (!p) continue;
    const check = checkMeasurement(p, pub.tokensPerSecond);
    notes.push(`${pub.system} ${pub.source}: ${check.note}`);
  }
  return {
    model: {
      name: c.name,
      params: c.params,
      paramsGiB: c.paramsGiB,
      kvGiB: c.kvGiB,
      gflopsPerToken: c.gflopsPerToken,
      gibPerToken: c.gibPerToken,
      flopsPerByte: c.flopsPerByte,
      memoryBoundOnH100: c.memoryBoundOnH100,
    },
    workload,
    flopConvention: (o.flopConvention ?? DEFAULT_FLOP_CONVENTION).name,
    systems: rows,
    speedups,
    notes,
  };
}

/** The report as text: a Table-1-style block, then one line per system and mode. */
export function formatReport(r: TimingReport): string {
  const m = r.model;
  const w = r.workload;
  const lines: string[] = [];
  lines.push(`${m.name}, ${w.batch === 1 ? 'batch 1' : `batch ${w.batch}`}, context ${w.context}`);
  const params = m.params >= 1e9 ? `${(m.params / 1e9).toFixed(2)}e9` : `${(m.params / 1e6).toFixed(2)}e6`;
  lines.push(`  parameters (GiB)         ${num(m.paramsGiB, 1).padStart(8)}   (${params} parameters)`);
  lines.push(`  KV cache (GiB)           ${num(m.kvGiB, 2).padStart(8)}`);
  lines.push(`  GFLOPs / token           ${num(m.gflopsPerToken, 1).padStart(8)}   (${r.flopConvention} convention)`);
  lines.push(`  GiB / token              ${num(m.gibPerToken, 1).padStart(8)}`);
  lines.push(`  FLOPs / byte             ${m.flopsPerByte.toFixed(2).padStart(8)}`);
  lines.push(`  memory-bound on DGX H100 ${(m.memoryBoundOnH100 ? 'yes' : 'no').padStart(8)}`);
  lines.push('');
  const head = ['system', 'mode', 'calls/token', 'tokens/s', 'roofline tokens/s', '% of peak'];
  const body = r.systems.map((s) => [
    s.system,
    s.mode,
    String(s.callsPerToken),
    num(s.tokensPerSecond, 1),
    num(s.rooflineTokensPerSecond, 1),
    s.percentOfPeak.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const row = (cells: string[]): string =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  lines.push(row(head));
  for (const b of body) lines.push(row(b));
  lines.push('');
  lines.push('speedups (looped): ' + r.speedups.map((s) => `${s.system} on/off ${s.loopingOnVsOff.toFixed(2)}x, vs DGX-H100 per-op ${s.vsDgxH100.toFixed(2)}x`).join('; '));
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n') + '\n';
}

/** Fixed decimals for ordinary values, 3 significant digits for small ones (tiny models). */
function num(x: number, decimals: number): string {
  return x === 0 || Math.abs(x) >= 10 ** -decimals * 10 ? x.toFixed(decimals) : x.toPrecision(3);
}
