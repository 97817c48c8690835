/**
 * The demo page's DOM helpers, its adapter panel, and its benchmark chart and table (app.ts
 * drives them). Its imports of ./index.ts become imports of the separate bundle ./kloop.js.
 */
import { OPTIONAL_FEATURES, modelMatrices, parameterCount, typeSummary } from './index.ts';
import type { BenchResult, GpuMode, LoadedModel, WebGPUSupport } from './index.ts';

/** One click of Generate, as recorded for window.kloop. */
export interface RunRecord {
  mode: GpuMode;
  tokensPerDispatch: number;
  prompt: string;
  promptTokens: number[];
  tokens: number[];
  text: string;
  tokensPerSecond: number;
  /** From the start of the prefill (kernels built) to the first generated token, as the engine times it. */
  prefillMs: number;
  /** The mode's kernels, the prefill's batched ones included (the first run of a mode and K only). */
  buildSeconds: number;
  done: boolean;
  stoppedAt?: string;
  error?: string;
}

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page: #${id} is missing`);
  return e as T;
};
export const el = <K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<Record<string, string>> = {}, text?: string): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (v !== undefined) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const SVG = 'http://www.w3.org/2000/svg';
export const svg = (tag: string, attrs: Record<string, string | number>, text?: string): SVGElement => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
};
export const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–');
export const mib = (n: number): string => (n >= 1 << 20 ? `${fmt(n / 2 ** 20, 1)} MiB` : `${fmt(n / 1024, 1)} KiB`);
/** "1 token", "2 tokens" (the count written as is, or formatted with `digits`). */
export const plural = (n: number, word: string, digits?: number): string =>
  `${digits === undefined ? String(n) : fmt(n, digits)} ${word}${n === 1 ? '' : 's'}`;
export const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------- messages

export function showErrorBox(text: string): void {
  const box = $('errors');
  if (box.hidden || !box.querySelector('ul')) {
    delete box.dataset.kind;
    box.replaceChildren();
    const close = el('button', { class: 'dismiss', type: 'button', 'aria-label': 'dismiss' }, '×');
    close.onclick = () => {
      box.hidden = true;
      box.replaceChildren();
    };
    box.append(close, el('strong', {}, 'Something went wrong'), el('ul'));
  }
  box.querySelector('ul')!.append(el('li', { class: 'err' }, text));
  box.hidden = false;
}

/** Takes the errors of earlier actions off the page (what blocks the page stays). */
export function clearErrors(): void {
  const box = $('errors');
  if (box.dataset.kind === 'blocking') {
    for (const li of box.querySelectorAll('li.err')) li.remove();
    return;
  }
  box.hidden = true;
  box.replaceChildren();
}

export function showBlocking(problems: string[]): void {
  const box = $('errors');
  box.dataset.kind = 'blocking';
  box.replaceChildren(el('strong', {}, 'This page cannot run kloop here:'));
  const ul = el('ul');
  for (const p of problems) ul.append(el('li', {}, p));
  box.append(ul);
  box.hidden = false;
}

export function showNotes(notes: string[]): void {
  const box = $('notes');
  if (notes.length === 0) return;
  const ul = el('ul');
  for (const n of notes) ul.append(el('li', {}, n));
  box.replaceChildren(el('strong', {}, 'Notes about this adapter'), ul);
  box.hidden = false;
}

/** The generation meters back to "nothing measured yet". */
export function resetMeters(): void {
  for (const [id, v] of [['tps', '–'], ['ntok', '0'], ['prefill', '–'], ['build', '–'], ['dpt', '–'], ['wgs', '–'], ['devmem', '–']] as const) $(id).textContent = v;
}

export function status(id: string, text: string, busy = false): void {
  const s = $(id);
  s.textContent = text;
  s.classList.toggle('busy', busy);
}

// ---------------------------------------------------------------- adapter

/** The adapter panel and badge: what checkWebGPU found (features, limits, problems, notes). */
export function showAdapter(s: WebGPUSupport): void {
  const badge = $('adapter-badge');
  const dl = $('adapter');
  dl.replaceChildren();
  const row = (k: string, v: string) => dl.append(el('dt', {}, k), el('dd', {}, v));
  if (!s.adapter) {
    badge.textContent = 'WebGPU unavailable';
    badge.className = 'badge bad';
    row('status', 'no WebGPU adapter');
  } else {
    const a = s.adapter;
    const what = [a.vendor, a.architecture, a.description || a.device].filter((x) => x && x !== 'unknown').join(' · ');
    badge.textContent = `WebGPU · ${what || 'adapter'}`;
    badge.className = s.ok ? 'badge ok' : 'badge bad';
    row('vendor', a.vendor);
    row('architecture', a.architecture);
    row('description', a.description || '(not given by the browser)');
    if (a.device) row('device', a.device);
    row('fallback adapter', a.fallback ? 'yes' : 'no');
    row('status', s.ok ? 'ready' : 'missing what the kernels need');
  }
  const chips = $('features');
  chips.replaceChildren();
  for (const f of OPTIONAL_FEATURES) {
    const on = s.features.includes(f);
    chips.append(el('span', { class: `chip ${on ? 'on' : 'off'}`, title: on ? 'used when present' : 'absent (optional)' }, f));
  }
  const all = $('features-all');
  all.replaceChildren();
  for (const f of s.features) all.append(el('span', { class: 'chip' }, f));
  $('all-features').querySelector('summary')!.textContent = `all ${plural(s.features.length, 'feature')}`;
  const limits = $('limits');
  limits.replaceChildren();
  for (const [k, v] of Object.entries(s.limits)) {
    limits.append(el('dt', {}, k), el('dd', { title: String(v) }, v >= 1 << 20 && v % (1 << 20) === 0 ? `${v / 2 ** 20} MiB` : String(v)));
  }
  for (const id of ['features', 'all-features', 'limits']) $(id).hidden = !s.adapter;
  for (const h of $('adapter-card').querySelectorAll('h3')) h.hidden = !s.adapter;
  if (!s.ok) showBlocking(s.problems);
  showNotes(s.notes);
}

// ---------------------------------------------------------------- benchmark chart and table

const MODE_COLORS: Record<GpuMode, string> = { 'per-op': '#8b98aa', 'per-layer': '#c38bff', looped: '#4f8cff' };

export function drawChart(results: BenchResult[], pending: Partial<Record<GpuMode, string>>, modes: readonly GpuMode[]): void {
  const chart = $('chart') as unknown as SVGSVGElement;
  const width = Math.max(320, chart.clientWidth || 640);
  const rowH = 44;
  const top = 10;
  const left = 96;
  const right = Math.min(230, Math.round(width * 0.4));
  const height = top + modes.length * rowH + 26;
  chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
  chart.style.height = `${height}px`;
  chart.replaceChildren();
  const max = Math.max(1e-9, ...results.map((r) => Math.max(r.tokensPerSecond, r.spread.max)));
  const span = width - left - right;
  chart.append(svg('line', { class: 'axis', x1: left, x2: left, y1: top - 4, y2: top + modes.length * rowH }));
  modes.forEach((mode, i) => {
    const y = top + i * rowH;
    chart.append(svg('text', { x: left - 10, y: y + 22, 'text-anchor': 'end', class: 'label' }, mode));
    const r = results.find((x) => x.mode === mode);
    if (r) {
      const w = Math.max(2, (span * r.tokensPerSecond) / max);
      const bar = svg('rect', { x: left, y: y + 6, width: 0, height: rowH - 16, rx: 4, fill: MODE_COLORS[mode] });
      bar.append(svg('animate', { attributeName: 'width', from: 0, to: w, dur: '0.5s', fill: 'freeze' }));
      bar.setAttribute('width', String(w));
      chart.append(bar);
      // The spread of the timed runs: a whisker from the slowest to the fastest.
      const x0 = left + (span * r.spread.min) / max;
      const x1 = left + (span * r.spread.max) / max;
      if (x1 - x0 >= 1) chart.append(svg('line', { class: 'whisker', x1: x0, x2: x1, y1: y + rowH / 2 - 1, y2: y + rowH / 2 - 1 }));
      const tx = left + Math.max(w, (span * r.spread.max) / max) + 8;
      chart.append(svg('text', { x: tx, y: y + 22, class: 'value' }, `${fmt(r.tokensPerSecond, 1)} tok/s`));
      chart.append(svg('text', { x: tx, y: y + 36, class: 'label', 'font-size': 11 }, `${fmt(r.spread.min, 1)}–${fmt(r.spread.max, 1)} · ${fmt(r.dispatchesPerToken, 2)} dispatches/token`));
    } else {
      chart.append(svg('text', { x: left + 10, y: y + 22, class: 'pending' }, pending[mode] ?? 'not run yet'));
    }
  });
  const looped = results.find((r) => r.mode === 'looped');
  const parts = results
    .filter((r) => r.mode !== 'looped' && looped && r.tokensPerSecond > 0)
    .map((r) => `${fmt(looped!.tokensPerSecond / r.tokensPerSecond, 2)}× ${r.mode}`);
  if (parts.length) chart.append(svg('text', { x: left, y: height - 6, class: 'label' }, `looped runs at ${parts.join(', ')}`));
}

export function benchTable(results: BenchResult[], agree?: boolean): void {
  const t = $('bench-table');
  t.replaceChildren();
  if (results.length === 0) return;
  const head = el('tr');
  const heads: [string, string?][] = [
    ['mode'], ['K'], ['tokens/s', 'the median of the timed runs'], ['spread', 'tokens/s of the slowest and the fastest timed run'], ['ms/token'],
    ['dispatches/token'], ['workgroups'], ['kernel build s'], ['fallbacks'],
  ];
  for (const [h, title] of heads) head.append(el('th', { title }, h));
  t.append(el('thead'), el('tbody'));
  t.querySelector('thead')!.append(head);
  for (const r of results) {
    const tr = el('tr');
    const name = el('td');
    name.append(el('span', { class: 'swatch', style: `background:${MODE_COLORS[r.mode]}` }), document.createTextNode(r.mode));
    tr.append(name);
    for (const v of [
      String(r.tokensPerDispatch), fmt(r.tokensPerSecond, 1), `${fmt(r.spread.min, 1)}–${fmt(r.spread.max, 1)}`,
      fmt(r.tokensPerSecond > 0 ? 1000 / r.tokensPerSecond : NaN, 2), fmt(r.dispatchesPerToken, 2),
      r.workgroups ? String(r.workgroups) : 'n/a', fmt(r.buildSeconds, 2), String(r.fallbacks),
    ]) tr.append(el('td', {}, v));
    t.querySelector('tbody')!.append(tr);
  }
  if (agree !== undefined) {
    const cap = el('caption', { class: agree ? 'good' : 'bad' }, agree ? '✓ every mode produced the same tokens' : '✗ the modes disagree on the tokens');
    cap.style.captionSide = 'bottom';
    cap.style.textAlign = 'left';
    cap.style.padding = '6px 0';
    t.append(cap);
  }
}

/** The loaded model's facts (name, size, weight encodings, shape) in the model panel. */
export function showModel(m: LoadedModel, ms: number): void {
  const c = m.config;
  const dl = $('model-info');
  dl.replaceChildren();
  const row = (k: string, v: string) => dl.append(el('dt', {}, k), el('dd', {}, v));
  const params = parameterCount(m.config);
  row('model', `${m.name} (${m.format === 'llama2c' ? 'llama2.c' : m.format})`);
  row('parameters', params >= 1e6 ? `${fmt(params / 1e6, 2)} M` : `${fmt(params / 1e3, 1)} K`);
  row('weights', typeSummary(modelMatrices(m.weights)));
  row('shape', `dim ${c.dim}, hidden ${c.hiddenDim}, ${plural(c.nLayers, 'layer')}`);
  row('heads', `${c.nHeads} query, ${c.nKvHeads} kv, head size ${c.headDim}`);
  row('vocabulary', plural(c.vocabSize, 'token'));
  row('context', plural(c.seqLen, 'position'));
  row('loaded in', `${fmt(ms, 0)} ms`);
  document.body.dataset.model = m.name;
}
