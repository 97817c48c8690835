/**
 * The demo page's script (web/index.html): plain DOM on top of the public browser API, which it
 * imports from the separate bundle ./kloop.js (see build.ts). Bundled to web/dist/app.js.
 *
 * One action runs at a time (Load, Generate, Run benchmark); Stop aborts a download at once, and
 * a generation or a benchmark at the next point it can stop (a kernel build or a prefill runs to
 * its end). A new model replaces the loaded one only once it has loaded.
 *
 * window.kloop exposes the API and what the page did (runs, benchmark) for tests and consoles.
 */
import * as kloop from './index.ts';
import type { BenchResult, GpuMode, LoadedModel, LoadProgress, WebGPUSupport } from './index.ts';
import { type NumberField, capped, fieldMessage, initField, readNumber, readNumbers } from './fields.ts';
import {
  $, type RunRecord, benchTable, clearErrors, drawChart, el, fmt, message, plural, resetMeters, showAdapter, showBlocking, showErrorBox, showModel, status,
} from './page.ts';
import { type Tab, choice, loadServedList, selectTab, selection, setFiles, showServedSummary, wireFiles } from './choice.ts';
import { loadMessage } from './pick.ts';

export type { RunRecord };

export interface PageHook {
  api: typeof kloop;
  /** Resolves once the WebGPU check and the served model list are done. */
  ready: Promise<WebGPUSupport>;
  support?: WebGPUSupport;
  model?: LoadedModel;
  runs: RunRecord[];
  lastRun?: RunRecord;
  lastBench?: { results: BenchResult[]; agree: boolean; done: boolean; stopped?: boolean; error?: string };
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

/** What the running action is doing: what Stop can interrupt depends on it. */
type Phase = 'load' | 'compile' | 'prefill' | 'decode' | 'bench';

const state = {
  /** Files chosen while an action ran: they load when it ends. */
  queued: false,
  model: undefined as LoadedModel | undefined,
  modelKey: '',
  /** The session of the loaded model: its executors are built once and reused. */
  session: undefined as kloop.Session | undefined,
  /** Kernel build seconds of each mode|K whose kernels (the prefill's too) this session has built. */
  prepared: new Map<string, number>(),
  /** The running action: its abort controller, its status line and its phase. */
  op: undefined as { abort: AbortController; statusId: string; phase: Phase } | undefined,
};

const D = kloop.DEFAULTS;
/** Tokens per looped dispatch: the engine's limit (MAX_TOKENS_PER_DISPATCH). */
const MAX_K = 64;
const FIELDS = {
  k: { id: 'k', dflt: D.tokensPerDispatch, min: 1, max: MAX_K, integer: true },
  maxTokens: { id: 'max-tokens', dflt: D.maxTokens, min: 1, integer: true },
  temperature: { id: 'temperature', dflt: 0, min: 0 },
  topP: { id: 'top-p', dflt: 0.9, min: 0, above: true, max: 1 },
  seed: { id: 'seed', dflt: 42, min: 0, max: 0xffffffff, integer: true },
  benchTokens: { id: 'bench-tokens', dflt: 64, min: 4, integer: true },
  benchK: { id: 'bench-k', dflt: D.tokensPerDispatch, min: 1, max: MAX_K, integer: true },
} satisfies Record<string, NumberField>;

const STOPPING: Record<Phase, string> = {
  load: 'stopping the download…',
  compile: 'stopping after the kernels are built (a compilation cannot be interrupted)…',
  prefill: 'stopping after the prefill…',
  decode: 'stopping…',
  bench: 'stopping after the current step (a kernel build or a timed run)…',
};

// ---------------------------------------------------------------- actions

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

/** Runs one action with the page busy; Stop aborts its signal. Files chosen meanwhile load after it. */
async function exclusive(statusId: string, body: (signal: AbortSignal) => Promise<void>): Promise<void> {
  if (hook.busy) return;
  const op = { abort: new AbortController(), statusId, phase: 'load' as Phase };
  state.op = op;
  setBusy(true);
  try {
    await body(op.abort.signal);
  } finally {
    if (state.op === op) state.op = undefined;
    setBusy(state.op !== undefined);
    if (state.queued) {
      state.queued = false;
      void loadClicked('files');
    }
  }
}

/** The running action enters `phase`; its status says `text` unless Stop was pressed. */
function setPhase(phase: Phase, text: string): void {
  const op = state.op;
  if (!op) return;
  op.phase = phase;
  if (!op.abort.signal.aborted) status(op.statusId, text, true);
}

function stopClicked(): void {
  const op = state.op;
  if (!op || op.abort.signal.aborted) return;
  op.abort.abort();
  status(op.statusId, STOPPING[op.phase], true);
  if (op.phase === 'load') status('load-status', STOPPING.load, true);
}

// ---------------------------------------------------------------- model choice

/** Files dropped or chosen: loaded now, or once the running action ends. */
function filesChosen(files: File[]): void {
  if (files.length === 0) return;
  if (hook.busy) {
    state.queued = true;
    setFiles(files, ': these load when the current action ends (Stop ends it now)');
    return;
  }
  setFiles(files);
  void loadClicked('files');
}

/**
 * The model chosen on tab `tab`, loaded unless it is the loaded one. The loaded model (and its
 * session) stays until the new one has loaded; a failed or stopped load leaves it in place.
 */
async function loadSelected(signal: AbortSignal, tab: Tab = choice.tab): Promise<LoadedModel> {
  const bar = $('load-bar');
  try {
    const sel = await selection(tab);
    if (state.model && state.modelKey === sel.key) {
      bar.style.width = '100%';
      status('load-status', `loaded ${state.model.name}`);
      return state.model;
    }
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
    status('load-status', 'loading…', true);
    const t0 = performance.now();
    const model = await kloop.loadModel(sel.source, { onProgress, signal });
    if (signal.aborted) throw new Error('stopped');
    const session = kloop.openSession(model, { device: kloop.sharedDevice });
    void state.session?.dispose();
    state.session = session;
    state.model = model;
    state.modelKey = sel.key;
    state.prepared.clear();
    hook.model = model;
    bar.style.width = '100%';
    showModel(model, performance.now() - t0);
    status('load-status', `loaded ${model.name}`);
    clearErrors();
    return model;
  } catch (e) {
    bar.style.width = '0%';
    const kept = state.model ? `; ${state.model.name} is still loaded` : '';
    status('load-status', `${signal.aborted ? 'stopped' : 'failed'}${kept}`);
    if (signal.aborted) throw e;
    throw new Error(loadMessage(e, tab));
  }
}

async function loadClicked(tab: Tab = choice.tab): Promise<void> {
  if (tab !== choice.tab) selectTab(tab);
  await exclusive('load-status', async (signal) => {
    try {
      await loadSelected(signal, tab);
    } catch (e) {
      if (!signal.aborted) showError(message(e));
    }
  });
}

// ---------------------------------------------------------------- generate

async function generate(): Promise<void> {
  if (hook.busy) return;
  const mode = $<HTMLSelectElement>('mode').value as GpuMode;
  const { maxTokens, temperature, topP, seed } = FIELDS;
  const fields = readNumbers({ maxTokens, temperature, topP, seed });
  // K counts in the looped mode only (its field is disabled in the others).
  const k = mode === 'looped' ? readNumber(FIELDS.k) : 1;
  if (mode !== 'looped') fieldMessage('k');
  if (!fields || k === undefined) {
    status('gen-status', 'not started: check the fields marked in red');
    return;
  }
  clearErrors();
  await exclusive('gen-status', (signal) => generateRun(mode, { ...fields, k }, signal));
}

async function generateRun(mode: GpuMode, f: { maxTokens: number; temperature: number; topP: number; seed: number; k: number }, signal: AbortSignal): Promise<void> {
  const k = f.k;
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
    await loadSelected(signal);
    const session = state.session!;
    const choice = { mode, tokensPerDispatch: k };
    const sampling = { temperature: f.temperature, topK: 0, topP: f.temperature > 0 ? f.topP : 1, seed: f.seed };
    // The prompt is encoded and checked against the context here, before any kernel is built.
    const g = session.generate({ ...choice, prompt, maxTokens: Math.min(f.maxTokens, session.context), sampling, ignoreEos: !$<HTMLInputElement>('stop-eos').checked });
    run.promptTokens = g.promptTokens;
    const room = session.context - g.promptTokens.length;
    capped('max-tokens', f.maxTokens, room, `the context (${session.context} positions, ${plural(g.promptTokens.length, 'prompt token')})`);
    const key = `${mode}|${k}`;
    // Built already by this session (a lost device makes the session forget its executors).
    const fresh = !session.built(choice);
    let seconds = fresh ? undefined : state.prepared.get(key);
    setPhase('compile', fresh ? `compiling the ${mode} kernels (WGSL; slow on a CPU adapter)…` : 'starting…');
    const t0 = performance.now();
    const { executor: ex } = await session.executorWithBuildTime(choice);
    // The prefill's batched kernels too, so that the prefill's time carries no compilation.
    await ex.forwardMany?.([], 0, 'none');
    seconds ??= (performance.now() - t0) / 1000;
    state.prepared.set(key, seconds);
    run.buildSeconds = seconds;
    $('build').textContent = fresh ? fmt(seconds, 2) : `${fmt(seconds, 2)} (cached)`;
    $('devmem').textContent = 'deviceBytes' in ex ? fmt((ex.deviceBytes as number) / 2 ** 20, 2) : 'n/a';
    if (signal.aborted) {
      run.stoppedAt = 'stopped';
      status('gen-status', 'stopped before generating (the kernels are built: the next run starts at once)');
      return;
    }
    out.replaceChildren(el('span', { class: 'prompt' }, prompt), el('span', { class: 'gen' }), el('span', { class: 'cursor' }));
    const gen = out.querySelector<HTMLElement>('.gen')!;
    setPhase('prefill', `prefilling ${plural(g.promptTokens.length, 'prompt token')}…`);
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
        // From the start of the prefill (kernels built) to the first token, as the engine times it.
        run.prefillMs = g.result().stats.timeToFirstTokenMs;
        $('prefill').textContent = fmt(run.prefillMs, 1);
        setPhase('decode', `generating (${mode}${mode === 'looped' ? `, K = ${k}` : ''})…`);
      } else {
        run.tokensPerSecond = (run.tokens.length - 1) / ((now - tFirst) / 1000);
        $('tps').textContent = fmt(run.tokensPerSecond, 1);
        const decoded = ex.stats.steps - atFirst.steps;
        if (decoded > 0) $('dpt').textContent = fmt((ex.stats.dispatches - atFirst.dispatches) / decoded, 2);
      }
      $('ntok').textContent = String(run.tokens.length);
      $('wgs').textContent = ex.stats.workgroups > 0 ? String(ex.stats.workgroups) : 'n/a';
      out.scrollTop = out.scrollHeight;
      if (signal.aborted) break;
    }
    const r = g.result();
    run.stoppedAt = signal.aborted ? 'stopped' : r.stoppedAt;
    const n = run.tokens.length;
    if (!signal.aborted && n > 1 && r.decodeSeconds > 0) run.tokensPerSecond = (n - 1) / r.decodeSeconds;
    if (n < 2) run.tokensPerSecond = 0;
    $('tps').textContent = n > 1 ? fmt(run.tokensPerSecond, 1) : '–';
    out.querySelector('.cursor')?.remove();
    const why = { eos: 'end of text', 'max-tokens': 'max tokens', context: 'end of the context', stopped: 'stopped' }[run.stoppedAt] ?? run.stoppedAt;
    const rate = n > 1 ? `, ${fmt(run.tokensPerSecond, 1)} tokens/s` : '';
    const fallbacks = ex.stats.fallbacks ? `, ${plural(ex.stats.fallbacks, 'barrier fallback')}` : '';
    status('gen-status', `${plural(n, 'token')}${rate} (${why})${fallbacks}`);
  } catch (e) {
    out.querySelector('.cursor')?.remove();
    if (signal.aborted && state.op?.phase === 'load') {
      run.stoppedAt = 'stopped';
      status('gen-status', `stopped while loading the model${state.model ? `; ${state.model.name} is still loaded` : ''}`);
    } else {
      run.error = message(e);
      status('gen-status', 'failed');
      showError(run.error);
    }
  } finally {
    run.done = true;
  }
}

// ---------------------------------------------------------------- benchmark

async function bench(): Promise<void> {
  if (hook.busy) return;
  const f = readNumbers({ tokens: FIELDS.benchTokens, k: FIELDS.benchK });
  if (!f) {
    status('bench-status', 'not started: check the fields marked in red');
    return;
  }
  clearErrors();
  await exclusive('bench-status', (signal) => benchRun(f, signal));
}

async function benchRun(f: { tokens: number; k: number }, signal: AbortSignal): Promise<void> {
  const record: NonNullable<PageHook['lastBench']> = { results: [], agree: false, done: false };
  hook.lastBench = record;
  const pending: Partial<Record<GpuMode, string>> = { 'per-op': 'waiting…', 'per-layer': 'waiting…', looped: 'waiting…' };
  let current: GpuMode | undefined;
  drawChart([], pending, kloop.GPU_MODES);
  benchTable([]);
  try {
    status('bench-status', 'loading the model…', true);
    await loadSelected(signal);
    const session = state.session!;
    const limit = Math.min(1024, session.context - 8);
    const tokens = capped('bench-tokens', f.tokens, limit, limit === 1024 ? 'the page' : `the context (${session.context} positions)`);
    setPhase('bench', 'starting…');
    const r = await kloop.compareModes(session, {
      tokens,
      tokensPerDispatch: f.k,
      signal,
      onProgress: (p) => {
        const words = { build: 'building kernels…', warmup: 'warming up…', run: `decoding ${plural(tokens, 'token')}, 3 times…`, done: '' };
        current = p.mode;
        if (p.phase === 'done' && p.result) {
          record.results.push(p.result);
          delete pending[p.mode];
        } else pending[p.mode] = words[p.phase];
        if (!signal.aborted) status('bench-status', p.phase === 'done' ? `${p.mode} done` : `${p.mode}: ${words[p.phase]}`, p.phase !== 'done');
        drawChart(record.results, pending, kloop.GPU_MODES);
        benchTable(record.results);
      },
    });
    record.agree = r.agree;
    drawChart(r.results, {}, kloop.GPU_MODES);
    benchTable(r.results, r.agree);
    status('bench-status', `done: ${plural(tokens, 'token')} per mode`);
  } catch (e) {
    record.error = message(e);
    record.stopped = signal.aborted;
    // No placeholder stays: the mode that was running says how it ended, the others were not run.
    const left: Partial<Record<GpuMode, string>> = {};
    for (const m of kloop.GPU_MODES) {
      if (!record.results.some((x) => x.mode === m)) left[m] = m === current ? (signal.aborted ? 'stopped' : 'failed') : 'not run';
    }
    drawChart(record.results, left, kloop.GPU_MODES);
    benchTable(record.results);
    if (signal.aborted) status('bench-status', record.results.length ? `stopped after ${record.results.map((x) => x.mode).join(', ')}` : 'stopped');
    else {
      status('bench-status', 'failed');
      showError(record.error);
    }
  } finally {
    record.done = true;
  }
}

// ---------------------------------------------------------------- wiring

function wire(): void {
  $<HTMLSelectElement>('served').onchange = showServedSummary;
  $<HTMLButtonElement>('load').onclick = () => {
    clearErrors();
    void loadClicked();
  };
  $<HTMLButtonElement>('generate').onclick = () => void generate();
  $<HTMLButtonElement>('bench').onclick = () => void bench();
  $<HTMLButtonElement>('stop').onclick = stopClicked;
  for (const field of Object.values(FIELDS)) initField(field, field.id === 'temperature' ? '0 (greedy)' : undefined);
  const mode = $<HTMLSelectElement>('mode');
  const syncK = () => {
    $<HTMLInputElement>('k').disabled = mode.value !== 'looped';
  };
  mode.onchange = syncK;
  syncK();
  $<HTMLTextAreaElement>('prompt').onkeydown = (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void generate();
  };
  wireFiles(filesChosen);
  window.addEventListener('resize', () => {
    if (hook.lastBench?.results.length) drawChart(hook.lastBench.results, {}, kloop.GPU_MODES);
  });
}

async function checkAdapter(): Promise<WebGPUSupport> {
  const s = await kloop.checkWebGPU();
  hook.support = s;
  showAdapter(s);
  return s;
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
    // An action started meanwhile (files dropped while the page starts) keeps the page busy.
    setBusy(state.op !== undefined);
    document.body.dataset.ready = '1';
    return support;
  })();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
