/**
 * SVG plot of the model: tokens/s against SN40L sockets, looping on and off, the bandwidth
 * roofline, and DGX H100 (TensorRT-LLM, per-op) as a reference line. Pure string building.
 */
import { DEFAULT_FLOP_CONVENTION } from './flops.ts';
import { predictMode, type PredictOptions } from './model.ts';
import { DGX_H100, DGX_H100_SYNC, SN40L_SYNC, sn40l } from './systems.ts';
import type { ModelShape, SyncCosts, SystemSpec, Workload } from './types.ts';

export interface PlotSeries {
  sockets: number[];
  looped: number[];
  perLayer: number[];
  roofline: number[];
  dgxH100: number;
}

export interface PlotOptions {
  sockets?: number[];
  sn40lSync?: SyncCosts;
  dgx?: SystemSpec;
  dgxSync?: SyncCosts;
  predict?: PredictOptions;
}

export function plotSeries(shape: ModelShape, workload: Workload, o: PlotOptions = {}): PlotSeries {
  const sockets = o.sockets ?? [1, 2, 4, 8, 16];
  const sync = o.sn40lSync ?? SN40L_SYNC;
  const p = o.predict ?? { flopConvention: DEFAULT_FLOP_CONVENTION };
  const at = (n: number, mode: 'looped' | 'per-layer') => predictMode(shape, workload, sn40l(n), sync, mode, p);
  return {
    sockets,
    looped: sockets.map((n) => at(n, 'looped').tokensPerSecond),
    perLayer: sockets.map((n) => at(n, 'per-layer').tokensPerSecond),
    roofline: sockets.map((n) => at(n, 'looped').rooflineTokensPerSecond),
    dgxH100: predictMode(shape, workload, o.dgx ?? DGX_H100, o.dgxSync ?? DGX_H100_SYNC, 'per-op', p).tokensPerSecond,
  };
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const f1 = (x: number): string => x.toFixed(1);

/** A "nice" axis maximum and tick step (1, 2 or 5 times a power of ten). */
function niceAxis(max: number): { top: number; step: number } {
  const raw = max / 5;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw)!;
  return { top: Math.ceil(max / step) * step, step };
}

export function renderPlotSvg(shape: ModelShape, workload: Workload, o: PlotOptions = {}): string {
  const s = plotSeries(shape, workload, o);
  const W = 780;
  const H = 440;
  const m = { l: 70, r: 230, t: 50, b: 60 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const { top, step } = niceAxis(Math.max(...s.roofline, s.dgxH100) * 1.05);
  const lx = s.sockets.map((n) => Math.log2(n));
  const x0 = Math.min(...lx);
  const x1 = Math.max(...lx);
  const X = (n: number): number => m.l + (x1 === x0 ? pw / 2 : ((Math.log2(n) - x0) / (x1 - x0)) * pw);
  const Y = (v: number): number => m.t + ph - (v / top) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica,Arial,sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(
    `<text x="${m.l}" y="22" font-size="15" font-weight="bold" fill="#222">${esc(
      `${shape.name} decode on SN40L: tokens/s vs sockets`,
    )}</text>`,
  );
  out.push(
    `<text x="${m.l}" y="38" fill="#555">${esc(
      `batch ${workload.batch}, context ${workload.context}; analytical model (calibrated sync terms)`,
    )}</text>`,
  );
  // Grid and y ticks.
  for (let v = 0; v <= top + 1e-9; v += step) {
    out.push(`<line x1="${m.l}" y1="${f1(Y(v))}" x2="${m.l + pw}" y2="${f1(Y(v))}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${m.l - 8}" y="${f1(Y(v) + 4)}" text-anchor="end" fill="#555">${v}</text>`);
  }
  for (const n of s.sockets) {
    out.push(`<line x1="${f1(X(n))}" y1="${m.t + ph}" x2="${f1(X(n))}" y2="${m.t + ph + 5}" stroke="#555"/>`);
    out.push(`<text x="${f1(X(n))}" y="${m.t + ph + 20}" text-anchor="middle" fill="#555">${n}</text>`);
  }
  out.push(`<line x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}" stroke="#555"/>`);
  out.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="#555"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 18}" text-anchor="middle" fill="#333">SN40L sockets (tensor parallel)</text>`);
  out.push(
    `<text x="18" y="${m.t + ph / 2}" text-anchor="middle" fill="#333" transform="rotate(-90 18 ${m.t + ph / 2})">tokens/s</text>`,
  );
  const series: Array<{ name: string; values: number[]; color: string; dash?: string }> = [
    { name: 'roofline (HBM)', values: s.roofline, color: '#6b7280', dash: '6 4' },
    { name: 'looping on', values: s.looped, color: '#2563eb' },
    { name: 'looping off (per layer)', values: s.perLayer, color: '#ea580c' },
  ];
  for (const se of series) {
    const pts = s.sockets.map((n, i) => `${f1(X(n))},${f1(Y(se.values[i]!))}`).join(' ');
    out.push(
      `<polyline points="${pts}" fill="none" stroke="${se.color}" stroke-width="2"${se.dash ? ` stroke-dasharray="${se.dash}"` : ''}/>`,
    );
    for (let i = 0; i < s.sockets.length; i++) {
      out.push(`<circle cx="${f1(X(s.sockets[i]!))}" cy="${f1(Y(se.values[i]!))}" r="3" fill="${se.color}"/>`);
    }
  }
  // Looped values as labels.
  for (let i = 0; i < s.sockets.length; i++) {
    out.push(
      `<text x="${f1(X(s.sockets[i]!) - 6)}" y="${f1(Y(s.looped[i]!) - 8)}" text-anchor="end" fill="#2563eb" font-size="11">${Math.round(s.looped[i]!)}</text>`,
    );
  }
  out.push(
    `<line x1="${m.l}" y1="${f1(Y(s.dgxH100))}" x2="${m.l + pw}" y2="${f1(Y(s.dgxH100))}" stroke="#dc2626" stroke-width="1.5" stroke-dasharray="2 3"/>`,
  );
  // Legend.
  const legend = [...series, { name: `DGX H100, per-op (${Math.round(s.dgxH100)})`, values: [], color: '#dc2626', dash: '2 3' }];
  legend.forEach((se, i) => {
    const y = m.t + 10 + i * 22;
    const x = m.l + pw + 16;
    out.push(
      `<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${se.color}" stroke-width="2"${se.dash ? ` stroke-dasharray="${se.dash}"` : ''}/>`,
    );
    out.push(`<text x="${x + 30}" y="${y + 4}" fill="#333">${esc(se.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
