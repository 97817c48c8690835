/**
 * The benchmark chart, as a standalone SVG (or an HTML page wrapping it): tokens/s by mode and
 * peer (with the device model's prediction as a marker when present), and % of the device's copy
 * bandwidth by mode. Plain string building, no browser or library needed.
 */
import type { BenchReport } from './run.ts';
import { deviceLabel, modelLabel } from './format.ts';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** A "nice" axis maximum at or above `x`. */
function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

interface Bar {
  label: string;
  value: number;
  lo?: number;
  hi?: number;
  predicted?: number;
  peer: boolean;
}

function panel(title: string, unit: string, bars: Bar[], x0: number, y0: number, width: number): { svg: string; height: number } {
  const rowH = 26;
  const labelW = 250;
  const plotW = width - labelW - 70;
  const max = niceMax(Math.max(...bars.map((b) => Math.max(b.hi ?? b.value, b.predicted ?? 0))));
  const sx = (v: number): number => x0 + labelW + (plotW * v) / max;
  const parts: string[] = [];
  parts.push(`<text x="${x0}" y="${y0 + 14}" font-size="14" font-weight="bold">${esc(title)}</text>`);
  const top = y0 + 26;
  const h = bars.length * rowH;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const x = sx(v);
    parts.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + h}" stroke="#ddd"/>`);
    parts.push(`<text x="${x}" y="${top + h + 14}" font-size="11" text-anchor="middle" fill="#555">${num(v)}</text>`);
  }
  parts.push(`<text x="${sx(max / 2)}" y="${top + h + 30}" font-size="11" text-anchor="middle" fill="#555">${esc(unit)}</text>`);
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const color = b.peer ? '#9a9a9a' : b.label.startsWith('looped') ? '#2b7bba' : '#e08a2c';
    parts.push(`<text x="${x0 + labelW - 8}" y="${y + 17}" font-size="12" text-anchor="end">${esc(b.label)}</text>`);
    parts.push(`<rect x="${sx(0)}" y="${y + 5}" width="${Math.max(0.5, sx(b.value) - sx(0))}" height="${rowH - 10}" fill="${color}"/>`);
    if (b.lo !== undefined && b.hi !== undefined) {
      const yc = y + rowH / 2;
      parts.push(`<line x1="${sx(b.lo)}" y1="${yc}" x2="${sx(b.hi)}" y2="${yc}" stroke="#222" stroke-width="1"/>`);
      parts.push(`<line x1="${sx(b.lo)}" y1="${yc - 4}" x2="${sx(b.lo)}" y2="${yc + 4}" stroke="#222"/><line x1="${sx(b.hi)}" y1="${yc - 4}" x2="${sx(b.hi)}" y2="${yc + 4}" stroke="#222"/>`);
    }
    if (b.predicted !== undefined) {
      const px = sx(b.predicted);
      parts.push(`<path d="M${px} ${y + 3} l5 -0 l-5 8 l-5 -8 z" fill="#c0392b"><title>predicted ${num(b.predicted)}</title></path>`);
    }
    parts.push(`<text x="${sx(Math.max(b.value, b.hi ?? 0)) + 6}" y="${y + 17}" font-size="11">${num(b.value)}</text>`);
  });
  return { svg: parts.join('\n'), height: 26 + h + 40 };
}

export function renderChartSvg(r: BenchReport): string {
  const width = 760;
  const pred = new Map((r.predicted ?? []).map((p) => [p.mode, p.predictedTokensPerSecond]));
  const tps: Bar[] = [
    ...r.results.map((m) => ({ label: m.mode, value: m.tokensPerSecond, lo: m.spread.min, hi: m.spread.max, predicted: pred.get(m.mode), peer: false })),
    ...r.peers.map((p) => ({ label: p.name, value: p.tokensPerSecond, lo: p.spread.min, hi: p.spread.max, peer: true })),
  ];
  const bw: Bar[] = r.results.map((m) => ({ label: m.mode, value: m.percentOfCopyBandwidth, peer: false }));
  const head = [
    `kloop bench: ${modelLabel(r)}${r.model.synthetic ? ' (SYNTHETIC weights)' : ''}`,
    `${deviceLabel(r)} - ${r.date.slice(0, 10)} - ${r.tokens} tokens x ${r.repeat} repeats, median, bars = min-max`,
  ];
  let y = 10;
  const parts: string[] = [];
  parts.push(`<text x="16" y="${(y += 16)}" font-size="15" font-weight="bold">${esc(head[0]!)}</text>`);
  parts.push(`<text x="16" y="${(y += 18)}" font-size="12" fill="#333">${esc(head[1]!)}</text>`);
  y += 12;
  const p1 = panel('Decode tokens/s (higher is better)' + (r.predicted ? ' - red marker: device-model prediction' : ''), 'tokens/s', tps, 16, y, width - 16);
  parts.push(p1.svg);
  y += p1.height + 8;
  const p2 = panel(`Achieved bandwidth, % of the copy kernel's ${num(r.copyBandwidthGBps)} GB/s`, '% of copy bandwidth', bw, 16, y, width - 16);
  parts.push(p2.svg);
  y += p2.height;
  const sp = Object.entries(r.speedups).map(([k, v]) => `${k} ${v.toFixed(2)}x`).join('   ');
  if (sp) parts.push(`<text x="16" y="${(y += 4)}" font-size="12">${esc('speedups: ' + sp)}</text>`);
  y += 16;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`
  );
}

export function renderChartHtml(r: BenchReport): string {
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>kloop bench: ${esc(r.model.name)}</title></head>\n<body>\n${renderChartSvg(r)}</body></html>\n`;
}
