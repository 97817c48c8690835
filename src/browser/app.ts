/**
 * The demo page's script (web/index.html): plain DOM on top of the public browser API, which it
 * imports from the separate bundle ./kloop.js (see build.ts). Bundled to web/dist/app.js.
 *
 * window.kloop exposes the API and what the page did (runs, benchmark) for tests and consoles.
 */
import * as kloop from './index.ts';
import type { BenchResult, GpuMode, LoadedModel, LoadProgress, ModelSource, WebGPUSupport } from './index.ts';
import { $, type RunRecord, benchTable, drawChart, el, fmt, message, mib, num, showBlocking, showErrorBox, showModel, showNotes, status } from './page.ts';

export type { RunRecord };

export interface PageHook {
  api: typeof kloop;
  /** Resolves once the WebGPU check and the served model list are done. */
  ready: Promise<WebGPUSupport>;
  support?: WebGPUSupport;
  model?: LoadedModel;
  runs: RunRecord[];
  lastRun?: RunRecord;
  lastBench?: { results: BenchResult[]; agree: boolean; done: boolean; error?: string };
  errors: string[];
  busy: boolean;
}

declare global {
  interface Window {
    kloop: PageHook;
  }
}

const hook: PageHook = { api: kloop, ready: Promise.resolve({ ok: false, problems: [], notes: [], features: [], limits: {} }), runs: [], errors: [], busy: false };
window.kloop = hook;

// ---------------------------------------------------------------- state

interface Selection {
  key: string;
  source: ModelSource;
}

const state = {
  tab: 'served' as 'served' | 'url' | 'files',
  served: [] as { name: string; format: string; model: string; tokenizer?: string; bytes: number; summary?: string }[],
  files: [] as File[],
  model: undefined as LoadedModel | undefined,
  modelKey: '',
  /** The session of the loaded model: its executors are built once and reused. */
  session: undefined as kloop.Session | undefined,
  stop: false,
};

// ---------------------------------------------------------------- messages

function showError(text: string): void {
  hook.errors.push(text);
  showErrorBox(text);
}

function setBusy(busy: boolean): void {
  hook.busy = busy;
  document.body.dataset.busy = busy ? '1' : '0';
  const blocked = hook.support ? !hook.support.ok : false;
  for (const id of ['load', 'generate', 'bench']) $<HTMLButtonElement>(id).disabled = busy || (blocked && id !== 'load');
  $<HTMLButtonElement>('stop').disabled = !busy;
}

// ---------------------------------------------------------------- adapter

async function checkAdapter(): Promise<WebGPUSupport> {
  const s = await kloop.checkWebGPU();
  hook.support = s;
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
  for (const f of kloop.OPTIONAL_FEATURES) {
    const on = s.features.includes(f);
    chips.append(el('span', { class: `chip ${on ? 'on' : 'off'}`, title: on ? 'used when present' : 'absent (optional)' }, f));
  }
  const all = $('features-all');
  all.replaceChildren();
  for (const f of s.features) all.append(el('span', { class: 'chip' }, f));
  $('all-features').querySelector('summary')!.textContent = `all ${s.features.length} features`;
  const limits = $('limits');
  limits.replaceChildren();
  for (const [k, v] of Object.entries(s.limits)) {
    limits.append(el('dt', {}, k), el('dd', { title: String(v) }, v >= 1 << 20 && v % (1 << 20) === 0 ? `${v / 2 ** 20} MiB` : String(v)));
  }
  for (const id of ['features', 'all-features', 'limits']) $(id).hidden = !s.adapter;
  for (const h of $('adapter-card').querySelectorAll('h3')) h.hidden = !s.adapter;
  if (!s.ok) showBlocking(s.problems);
  showNotes(s.notes);
  return s;
}

// ---------------------------------------------------------------- model choice

function selectTab(tab: typeof state.tab): void {
  state.tab = tab;
  for (const b of document.querySelectorAll<HTMLButtonElement>('.tab')) {
    const on = b.dataset.tab === tab;
    b.classList.toggle('active', on);
    b.setAttribute('aria-selected', String(on));
  }
  for (const p of document.querySelectorAll<HTMLElement>('.tab-panel')) p.hidden = p.dataset.panel !== tab;
}

async function loadServedList(): Promise<void> {
  const sel = $<HTMLSelectElement>('served');
  try {
    const res = await fetch('models/');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as { models: typeof state.served };
    state.served = body.models;
  } catch (e) {
    state.served = [];
    $('served-summary').textContent = `No model list from this server (${message(e)}): use a URL or local files.`;
  }
  sel.replaceChildren();
  if (state.served.length === 0) {
    sel.append(el('option', { value: '' }, 'no models served (set KLOOP_MODELS)'));
    if (!$('served-summary').textContent) $('served-summary').textContent = 'The server found no models: use a URL or local files.';
    return;
  }
  state.served.forEach((m, i) => sel.append(el('option', { value: String(i) }, `${m.name} · ${m.format} · ${mib(m.bytes)}`)));
  const preferred = state.served.findIndex((m) => m.name === 'stories260K');
  sel.value = String(preferred >= 0 ? preferred : 0);
  showServedSummary();
}

function showServedSummary(): void {
  const m = state.served[Number($<HTMLSelectElement>('served').value)];
  $('served-summary').textContent = m ? `${m.model}${m.tokenizer ? ` + ${m.tokenizer}` : ''}${m.summary ? ` · ${m.summary}` : ''}` : '';
}

function setFiles(files: File[]): void {
  state.files = files;
  $('files-chosen').textContent = files.length ? files.map((f) => `${f.name} (${mib(f.size)})`).join(', ') : '';
}

const isTokenizerName = (n: string): boolean => /^tok.*\.bin$/i.test(n) || /^tokenizer\.(bin|json)$/i.test(n) || /\.json$/i.test(n);

function selection(): Selection {
  if (state.tab === 'served') {
    const m = state.served[Number($<HTMLSelectElement>('served').value)];
    if (!m) throw new kloop.KloopError('no served model chosen: pick one, or use a URL or local files');
    return { key: `served:${m.model}`, source: m.tokenizer ? { model: m.model, tokenizer: m.tokenizer } : m.model };
  }
  if (state.tab === 'url') {
    const model = $<HTMLInputElement>('model-url').value.trim();
    const tok = $<HTMLInputElement>('tok-url').value.trim();
    if (!model) throw new kloop.KloopError('model URL: empty');
    return { key: `url:${model}|${tok}`, source: tok ? { model, tokenizer: tok } : model };
  }
  const files = state.files;
  if (files.length === 0) throw new kloop.KloopError('no local files chosen: drop a .gguf, or a llama2.c .bin with its tokenizer');
  const gguf = files.find((f) => /\.gguf$/i.test(f.name));
  const model = gguf ?? files.find((f) => !isTokenizerName(f.name)) ?? (files.length === 1 ? files[0] : undefined);
  if (!model) throw new kloop.KloopError(`local files: which one is the model? (${files.map((f) => f.name).join(', ')})`);
  const tok = gguf ? undefined : files.find((f) => f !== model && isTokenizerName(f.name));
  const key = `files:${files.map((f) => `${f.name}:${f.size}:${f.lastModified}`).join('|')}`;
  return { key, source: tok ? { model, tokenizer: tok } : { model } };
}

function disposeSession(): void {
  void state.session?.dispose();
  state.session = undefined;
}

async function loadSelected(): Promise<LoadedModel> {
  const sel = selection();
  if (state.model && state.modelKey === sel.key) return state.model;
  disposeSession();
  state.model = undefined;
  hook.model = undefined;
  $('model-info').replaceChildren();
  const bar = $('load-bar');
  const seen = new Map<string, LoadProgress>();
  const onProgress = (p: LoadProgress) => {
    seen.set(p.what, p);
    let loaded = 0;
    let total = 0;
    for (const q of seen.values()) {
      loaded += q.loaded;
      total += q.total ?? q.loaded;
    }
    bar.style.width = `${total > 0 ? Math.round((100 * loaded) / total) : 0}%`;
  };
  bar.style.width = '0%';
  const t0 = performance.now();
  const model = await kloop.loadModel(sel.source, { onProgress });
  bar.style.width = '100%';
  state.model = model;
  state.session = kloop.openSession(model, { device: kloop.sharedDevice });
  state.modelKey = sel.key;
  hook.model = model;
  showModel(model, performance.now() - t0);
  return model;
}

// ---------------------------------------------------------------- generate

function resetMeters(): void {
  for (const [id, v] of [['tps', '–'], ['ntok', '0'], ['prefill', '–'], ['build', '–'], ['dpt', '–'], ['wgs', '–'], ['devmem', '–']]) $(id!).textContent = v!;
}

async function generate(): Promise<void> {
  if (hook.busy) return;
  setBusy(true);
  state.stop = false;
  const mode = $<HTMLSelectElement>('mode').value as GpuMode;
  const k = mode === 'looped' ? Math.round(num('k', 1, 64, kloop.DEFAULTS.tokensPerDispatch)) : 1;
  const prompt = $<HTMLTextAreaElement>('prompt').value;
  const run: RunRecord = {
    mode, tokensPerDispatch: k, prompt, promptTokens: [], tokens: [], text: '', tokensPerSecond: 0, prefillMs: 0, buildSeconds: 0, done: false,
  };
  hook.runs.push(run);
  hook.lastRun = run;
  resetMeters();
  const out = $('output');
  try {
    status('gen-status', 'loading the model…', true);
    const model = await loadSelected();
    const session = state.session!;
    const fresh = !session.built({ mode, tokensPerDispatch: k });
    status('gen-status', fresh ? `building the ${mode} kernels (compiling WGSL; slow on a CPU adapter)…` : 'starting…', true);
    const { executor: ex, buildSeconds } = await session.executorWithBuildTime({ mode, tokensPerDispatch: k });
    run.buildSeconds = buildSeconds;
    $('build').textContent = fresh ? fmt(buildSeconds, 2) : `${fmt(buildSeconds, 2)} (cached)`;
    $('devmem').textContent = 'deviceBytes' in ex ? fmt((ex.deviceBytes as number) / 2 ** 20, 2) : 'n/a';
    const maxTokens = Math.round(num('max-tokens', 1, model.config.seqLen, 128));
    const temperature = num('temperature', 0, 100, 0);
    const sampling = { temperature, topK: 0, topP: temperature > 0 ? num('top-p', 0.01, 1, 0.9) : 1, seed: Math.round(num('seed', 0, 0xffffffff, 42)) };
    const g = session.generate({ mode, tokensPerDispatch: k, prompt, maxTokens, sampling, ignoreEos: !$<HTMLInputElement>('stop-eos').checked });
    run.promptTokens = g.promptTokens;
    out.replaceChildren(el('span', { class: 'prompt' }, prompt), el('span', { class: 'gen' }), el('span', { class: 'cursor' }));
    const gen = out.querySelector<HTMLElement>('.gen')!;
    status('gen-status', `generating (${mode}${mode === 'looped' ? `, K = ${k}` : ''})…`, true);
    const t0 = performance.now();
    let tFirst = 0;
    let atFirst = { ...ex.stats };
    for await (const t of g) {
      const now = performance.now();
      run.tokens.push(t.id);
      run.text += t.text;
      gen.textContent += t.text;
      if (run.tokens.length === 1) {
        tFirst = now;
        atFirst = { ...ex.stats };
        run.prefillMs = now - t0;
        $('prefill').textContent = fmt(run.prefillMs, 1);
      } else {
        run.tokensPerSecond = (run.tokens.length - 1) / ((now - tFirst) / 1000);
        $('tps').textContent = fmt(run.tokensPerSecond, 1);
        const decoded = ex.stats.steps - atFirst.steps;
        if (decoded > 0) $('dpt').textContent = fmt((ex.stats.dispatches - atFirst.dispatches) / decoded, 2);
      }
      $('ntok').textContent = String(run.tokens.length);
      $('wgs').textContent = ex.stats.workgroups > 0 ? String(ex.stats.workgroups) : 'n/a';
      out.scrollTop = out.scrollHeight;
      if (state.stop) break;
    }
    const r = g.result();
    run.stoppedAt = state.stop ? 'stopped' : r.stoppedAt;
    if (!state.stop && r.tokens.length > 1 && r.decodeSeconds > 0) run.tokensPerSecond = (r.tokens.length - 1) / r.decodeSeconds;
    $('tps').textContent = run.tokens.length > 1 ? fmt(run.tokensPerSecond, 1) : '–';
    out.querySelector('.cursor')?.remove();
    const why = { eos: 'end of text', 'max-tokens': 'max tokens', context: 'end of the context', stopped: 'stopped' }[run.stoppedAt] ?? run.stoppedAt;
    status('gen-status', `${run.tokens.length} tokens, ${fmt(run.tokensPerSecond, 1)} tokens/s (${why})${ex.stats.fallbacks ? `, ${ex.stats.fallbacks} barrier fallbacks` : ''}`);
  } catch (e) {
    run.error = message(e);
    status('gen-status', 'failed');
    out.querySelector('.cursor')?.remove();
    showError(run.error);
  } finally {
    run.done = true;
    setBusy(false);
  }
}

// ---------------------------------------------------------------- benchmark

async function bench(): Promise<void> {
  if (hook.busy) return;
  setBusy(true);
  state.stop = false;
  const record: NonNullable<PageHook['lastBench']> = { results: [], agree: false, done: false };
  hook.lastBench = record;
  const abort = new AbortController();
  const pending: Partial<Record<GpuMode, string>> = { 'per-op': 'waiting…', 'per-layer': 'waiting…', looped: 'waiting…' };
  drawChart([], pending, kloop.GPU_MODES);
  benchTable([]);
  const stopWatch = setInterval(() => {
    if (state.stop) abort.abort();
  }, 100);
  try {
    status('bench-status', 'loading the model…', true);
    const model = await loadSelected();
    const tokens = Math.round(num('bench-tokens', 4, Math.min(1024, model.config.seqLen - 8), 64));
    const k = Math.round(num('bench-k', 1, 64, kloop.DEFAULTS.tokensPerDispatch));
    const r = await kloop.compareModes(state.session!, {
      tokens,
      tokensPerDispatch: k,
      signal: abort.signal,
      onProgress: (p) => {
        const words = { build: 'building kernels…', warmup: 'warming up…', run: `decoding ${tokens} tokens…`, done: '' };
        if (p.phase === 'done' && p.result) {
          record.results.push(p.result);
          delete pending[p.mode];
        } else pending[p.mode] = words[p.phase];
        status('bench-status', p.phase === 'done' ? `${p.mode} done` : `${p.mode}: ${words[p.phase]}`, p.phase !== 'done');
        drawChart(record.results, pending, kloop.GPU_MODES);
        benchTable(record.results);
      },
    });
    record.agree = r.agree;
    drawChart(r.results, {}, kloop.GPU_MODES);
    benchTable(r.results, r.agree);
    status('bench-status', `done: ${tokens} tokens per mode`);
  } catch (e) {
    record.error = message(e);
    status('bench-status', 'failed');
    if (!abort.signal.aborted) showError(record.error);
  } finally {
    clearInterval(stopWatch);
    record.done = true;
    setBusy(false);
  }
}

// ---------------------------------------------------------------- wiring

async function loadClicked(): Promise<void> {
  if (hook.busy) return;
  setBusy(true);
  try {
    await loadSelected();
  } catch (e) {
    showError(message(e));
  } finally {
    setBusy(false);
  }
}

function wire(): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>('.tab')) b.onclick = () => selectTab(b.dataset.tab as typeof state.tab);
  $<HTMLSelectElement>('served').onchange = showServedSummary;
  $<HTMLButtonElement>('load').onclick = () => void loadClicked();
  $<HTMLButtonElement>('generate').onclick = () => void generate();
  $<HTMLButtonElement>('bench').onclick = () => void bench();
  $<HTMLButtonElement>('stop').onclick = () => {
    state.stop = true;
  };
  const mode = $<HTMLSelectElement>('mode');
  const syncK = () => {
    $<HTMLInputElement>('k').disabled = mode.value !== 'looped';
  };
  mode.onchange = syncK;
  syncK();
  $<HTMLTextAreaElement>('prompt').onkeydown = (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void generate();
  };
  const input = $<HTMLInputElement>('files');
  input.onchange = () => {
    setFiles([...(input.files ?? [])]);
    if (state.files.length) void loadClicked();
  };
  const drop = $('drop');
  const over = (on: boolean) => (e: DragEvent) => {
    e.preventDefault();
    drop.classList.toggle('over', on);
  };
  drop.addEventListener('dragenter', over(true));
  drop.addEventListener('dragover', over(true));
  drop.addEventListener('dragleave', over(false));
  drop.addEventListener('drop', (e) => {
    over(false)(e);
    setFiles([...(e.dataTransfer?.files ?? [])]);
    if (state.files.length) void loadClicked();
  });
  // Files dropped anywhere on the page go to the drop zone instead of replacing the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    if (!drop.contains(e.target as Node) && e.dataTransfer?.files.length) {
      selectTab('files');
      setFiles([...e.dataTransfer.files]);
      void loadClicked();
    }
  });
  window.addEventListener('resize', () => {
    if (hook.lastBench?.results.length) drawChart(hook.lastBench.results, {}, kloop.GPU_MODES);
  });
}

function start(): void {
  wire();
  drawChart([], {}, kloop.GPU_MODES);
  setBusy(false);
  hook.ready = (async () => {
    const [support] = await Promise.all([
      checkAdapter().catch((e) => {
        showBlocking([`The WebGPU check failed: ${message(e)}`]);
        return { ok: false, problems: [message(e)], notes: [], features: [], limits: {} } as WebGPUSupport;
      }),
      loadServedList(),
    ]);
    setBusy(false);
    document.body.dataset.ready = '1';
    return support;
  })();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
