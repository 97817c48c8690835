/**
 * The benchmark: every mode (and peer) measured in ONE process on ONE adapter, interleaved across
 * repeats (the order rotates each repeat) so that drift and background load hit them alike.
 * Warm-up (kernel compilation, the first decode) is excluded; the median over repeats is
 * reported with its spread.
 *
 * A decode measurement is executor.decode([BOS], 0, N, GREEDY): N steps from position 0, the
 * sampled token fed back (on the device for looped:K, through the host otherwise).
 */
import { loadavg } from 'node:os';
import { basename } from 'node:path';
import { KloopError } from '../errors.ts';
import { loadModel } from '../loader/index.ts';
import { modelMatrices, typeSummary } from '../loader/quant.ts';
import { syntheticModel } from '../loader/synthetic.ts';
import type { LoadedModel, WeightType } from '../loader/types.ts';
import type { AcquiredDevice } from '../engine/device.ts';
import type { Executor, Mode } from '../engine/executor.ts';
import type { GpuExecutor } from '../engine/gpu-executor.ts';
import { Session, parameterCount } from '../engine/session.ts';
import { type DeviceMeasurements, type Measured, measureCopyBandwidth, measureDevice, median } from '../rdu-emulation/device-model/microbench.ts';
import { type DeviceParameters, deviceParameters, modeStructure, predictMode } from '../rdu-emulation/device-model/model.ts';
import { type StepOverheads, medianOverheads } from '../engine/overheads.ts';
import { passThrough } from '../engine/host-wait.ts';
import { meanStepBytes } from './bytes.ts';
import { type BenchMode, DEFAULT_MODES, parseModes } from './modes.ts';
import { type LlamaGpu, type Peer, findGguf, llamaCppPeer } from './peers.ts';

export interface BenchOptions {
  /** Model file; default: the default model (stories260K) resolved by the caller. */
  model?: string;
  /** Tokenizer of a llama2.c `model` (default: the tok*.bin beside it). */
  tokenizer?: string;
  /** A real-shaped synthetic model instead of a file (SYNTHETIC_SHAPES). */
  shape?: string;
  seed?: number;
  /** Invocations per workgroup of the kernels (default: the engine's choice per adapter). */
  workgroupSize?: number;
  /** Where f32 weights live on the device (default: the engine's choice per adapter). */
  weightStore?: 'storage' | 'texture';
  /** false: no subgroup form (KernelOptions.subgroups 0); default the engine's choice per adapter. */
  subgroups?: boolean;
  /** Pad the matvecs' staged input (KernelOptions.padStaging); default the engine's choice per kernel style. */
  padStaging?: boolean;
  /** How the host waits for readbacks: 'spin' leaves Dawn's poll loop alone (host-wait.ts); default the engine's waiter. */
  hostWait?: 'sleep' | 'spin';
  /** Encoding of the synthetic model's matrices (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k). */
  type?: WeightType;
  /** Mode list, e.g. "per-op,per-layer,looped,looped:16". */
  modes?: string;
  /** Tokens decoded per measurement (a multiple of every looped K). */
  tokens?: number;
  /** Also time a prefill of a prompt this long through the batched forward, per GPU mode. */
  promptTokens?: number;
  repeat?: number;
  peers?: boolean;
  /** Also measure llama.cpp with every layer on this GPU backend (node-llama-cpp's build), on the model's GGUF. */
  llamaGpu?: LlamaGpu;
  gguf?: string;
  predict?: boolean;
  adapter?: string;
  /** An already acquired device (tests); `adapter` is then ignored. */
  device?: AcquiredDevice;
  /** Progress (done, total, what): the command draws a bar on stderr. */
  progress?: (done: number, total: number, what: string) => void;
  /** Messages (skipped peers, fallbacks). */
  log?: (s: string) => void;
  /** The command line, recorded in the report. */
  command?: string;
}

export interface Spread {
  min: number;
  max: number;
  runs: number;
}

export interface ModeResult {
  mode: string;
  tokensPerSecond: number;
  msPerToken: number;
  dispatchesPerToken: number;
  submitsPerToken: number;
  bytesPerToken: number;
  achievedGBps: number;
  percentOfCopyBandwidth: number;
  /** Tokens/s of the slowest and fastest repeat. */
  spread: Spread;
  /** Workgroups of the fused dispatch (0 for per-op). */
  workgroups: number;
  gridBarriersPerToken: number;
  /** Steps re-run with per-op dispatches after a barrier timeout (all repeats). */
  fallbacks: number;
}

/** Prefill of a `promptTokens`-token prompt through the batched forward, beside the mode's decode. */
export interface PrefillResult {
  mode: string;
  promptTokens: number;
  tokensPerSecond: number;
  spread: Spread;
  /** Dispatches of one prefill. */
  dispatches: number;
  /** Prefill tokens/s over the same mode's decode tokens/s (medians). */
  overDecode: number;
}

export interface PeerResult {
  name: string;
  tokensPerSecond: number;
  spread: Spread;
  tokens: number;
}

export interface PredictionResult {
  mode: string;
  predictedTokensPerSecond: number;
  measuredTokensPerSecond: number;
  /** (predicted - measured) / measured, percent. */
  errorPercent: number;
  /** Predicted milliseconds per token by term. */
  breakdownMs: { kernel: number; dispatch: number; barrier: number; roundTrip: number };
}

export interface DeviceModelReport {
  dispatchUs: number;
  roundTripUs: number;
  barrierUs: number;
  discoverUs: number;
  copyGBps: number;
  matvecGBps: number;
  fusedMatvecGBps: number;
  /** Stage time of one token, ms: its per-op dispatches' work, inside a running fused dispatch, in a dispatch of its own (cold), its per-layer dispatches' work. */
  stageMsPerToken: { perOp: number; fused: number; cold?: number; perLayer?: number };
  /** Microseconds per call of each stage (median): one per-op dispatch (launch included), and inside a running fused dispatch. */
  stageUsPerCall: Record<string, { perOp: number; fused: number }>;
  barrierWorkgroups: number;
  barrierParticipants: number;
  /** Median workgroups that join a fused dispatch with the executor's step poll budget. */
  stepParticipants: number;
  measurements: DeviceMeasurements;
}

export interface BenchReport {
  device: { vendor: string; architecture: string; description: string };
  adapter: string;
  model: { name: string; synthetic: boolean; params: number; source: string; weightTypes: string; deviceBytes: number; weightStore: 'storage' | 'texture' | 'none'; subgroups: number; padStaging: boolean; workgroupSize: number; hostWait: 'sleep' | 'spin' };
  date: string;
  command?: string;
  tokens: number;
  repeat: number;
  copyBandwidthGBps: number;
  copyBandwidthSpread: Spread;
  results: ModeResult[];
  peers: PeerResult[];
  prefill?: PrefillResult[];
  /** e.g. "looped/per-layer": tokens/s of looped over per-layer (medians). */
  speedups: Record<string, number>;
  predicted?: PredictionResult[];
  deviceModel?: DeviceModelReport;
  /** 1-minute load average of the host at the start and the end of the run (other processes share the CPU adapters' cores). */
  loadAverage: { start: number; end: number };
  notes: string[];
}

interface Entry {
  label: string;
  kind: 'mode' | 'peer' | 'prefill';
  tokens: number;
  run(): Promise<void>;
  times: number[];
}

const GB = 1e9;

async function loadBenchModel(o: BenchOptions): Promise<{ model: LoadedModel; path?: string; synthetic: boolean }> {
  if (o.shape && o.model) throw new KloopError('--shape and --model: give one of them');
  if (o.type && !o.shape) throw new KloopError('--type applies to a synthetic --shape model (a file keeps its own encodings)');
  if (o.shape) return { model: syntheticModel(o.shape, o.seed ?? 1234, o.type ?? 'f32'), synthetic: true };
  if (!o.model) throw new KloopError('bench: no model given');
  return { model: await loadModel(o.model, { tokenizer: o.tokenizer }), path: o.model, synthetic: false };
}

function spreadOf(xs: number[]): Spread {
  return { min: Math.min(...xs), max: Math.max(...xs), runs: xs.length };
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  const modes: BenchMode[] = parseModes(o.modes ?? DEFAULT_MODES);
  const tokens = o.tokens ?? 64;
  const repeat = o.repeat ?? 5;
  if (!Number.isInteger(tokens) || tokens < 1) throw new KloopError(`--tokens ${tokens}: must be a positive integer`);
  if (!Number.isInteger(repeat) || repeat < 1) throw new KloopError(`--repeat ${repeat}: must be a positive integer`);
  for (const m of modes) {
    if (tokens % m.k !== 0) throw new KloopError(`--tokens ${tokens}: must be a multiple of ${m.k} for ${m.label}`);
  }
  const log = o.log ?? (() => undefined);
  const notes: string[] = [];
  const note = (s: string): void => {
    notes.push(s);
    log(s);
  };

  const loadStart = loadavg()[0]!;
  const { model, path, synthetic } = await loadBenchModel(o);
  const cfg = model.config;
  if (tokens > cfg.seqLen) throw new KloopError(`--tokens ${tokens}: over the model's context of ${cfg.seqLen} positions`);
  // One session: one device, the executors built once; a device given by the caller is not destroyed.
  const kernel = { ...(o.workgroupSize ? { wg: o.workgroupSize } : {}), ...(o.weightStore ? { texture: o.weightStore === 'texture' } : {}), ...(o.subgroups === false ? { subgroups: 0 } : {}), ...(o.padStaging !== undefined ? { padStaging: o.padStaging } : {}) };
  const tuning = Object.keys(kernel).length > 0 ? { kernel } : undefined;
  const session = new Session(model, o.device ? { device: o.device, log, tuning } : { adapter: o.adapter, log, tuning });
  // What the model and the session decide is checked before the device opens and any executor is built.
  const P = o.promptTokens;
  if (P !== undefined && (!Number.isInteger(P) || P < 1 || P > session.context)) throw new KloopError(`--prompt-tokens ${P}: must be an integer in [1, ${session.context}]`);
  // llama.cpp on the CPU (--peers) and on a GPU backend (--llama-gpu), on the same GGUF.
  const llamaRuns: (LlamaGpu | undefined)[] = [...(o.peers ? [undefined] : []), ...(o.llamaGpu ? [o.llamaGpu] : [])];
  const gguf = llamaRuns.length === 0 || synthetic ? undefined : await findGguf(path, o.gguf);
  const gpu = await session.device();
  const engineWait = gpu.wait;
  if (o.hostWait === 'spin') gpu.wait = passThrough;
  const microSteps = o.predict ? 6 : 1;
  const peerCount = (o.peers ? 2 : 0) + (o.llamaGpu ? 1 : 0);
  const total = modes.length + microSteps + peerCount + repeat * (modes.length + peerCount);
  let done = 0;
  const tick = (what: string): void => o.progress?.(++done, total, what);

  // Executors, each warmed up with one full measurement's decode (compiles and JITs the kernels).
  const executors: { m: BenchMode; ex: Executor }[] = [];
  const entries: Entry[] = [];
  const peers: Peer[] = [];
  const decode = (mode: Mode, k: number, n: number) => session.timeDecode({ mode, tokensPerDispatch: k, tokens: n });
  try {
    for (const m of modes) {
      const ex = await session.executor({ mode: m.mode, tokensPerDispatch: m.k });
      executors.push({ m, ex });
      await decode(m.mode, m.k, tokens);
      tick(`warm-up ${m.label}`);
    }
    const gx = executors.map((e) => e.ex as GpuExecutor);
    const layout = gx[0]!.layout;
    const fused = gx.find((e) => e.mode !== 'per-op');
    const fusedGroups = fused?.stats.workgroups ?? 1;

    // Device microbenchmarks: copy bandwidth always; the whole device model with --predict.
    let dm: DeviceMeasurements | undefined;
    let copy: Measured;
    if (o.predict) {
      dm = await measureDevice({ device: gpu.device, layout, fusedGroups, cpu: gpu.cpu, wait: gpu.wait }, { pos: (tokens - 1) / 2, onStep: (s) => tick(s) });
      copy = dm.copyBytesPerSecond;
    } else {
      copy = await copyOnly(gpu, layout, fusedGroups);
      tick('copy bandwidth');
    }

    for (const { m, ex } of executors) {
      entries.push({ label: m.label, kind: 'mode', tokens, times: [], run: async () => void (await decode(m.mode, m.k, tokens)) });
    }
    // Dispatches and submits of one prefill, per mode label (its executor is the decode one).
    const prefillDispatches = new Map<string, { dispatches: number; submits: number }>();
    if (P !== undefined) {
      for (const { m } of executors) {
        if (m.k !== 1 && executors.some((e) => e.m.mode === m.mode && e.m.k === 1)) continue; // the same batched kernels
        const run = async () => void prefillDispatches.set(m.label, await session.timePrefill({ mode: m.mode, tokensPerDispatch: m.k, tokens: P }));
        await run();
        entries.push({ label: `${m.label} prefill`, kind: 'prefill', tokens: P, times: [], run });
      }
      tick('prefill warm-up');
    }
    if (o.peers) {
      // kloop's CPU reference: cheap on small models; fewer tokens on big ones.
      const refTokens = parameterCount(cfg) > 20e6 ? Math.min(tokens, 8) : tokens;
      await decode('reference', 1, Math.min(refTokens, 2));
      entries.push({ label: 'kloop reference (CPU, TypeScript)', kind: 'peer', tokens: refTokens, times: [], run: async () => void (await decode('reference', 1, refTokens)) });
      tick('reference');
    }
    for (const backend of llamaRuns) {
      if (!gguf) {
        note(synthetic ? 'llama.cpp peer skipped: a synthetic model has no GGUF file (write one with kloop convert --shape)' : `llama.cpp peer skipped: no .gguf beside ${path} (give one with --gguf PATH)`);
      } else {
        const p = await llamaCppPeer(gguf, tokens, 1, backend);
        if (typeof p === 'string') note(p);
        else {
          peers.push(p);
          await p.run(Math.min(tokens, 8));
          entries.push({ label: p.name, kind: 'peer', tokens, times: [], run: () => p.run(tokens) });
        }
      }
      tick(backend ? `llama.cpp (${backend})` : 'llama.cpp');
    }

    // Interleaved repeats; the starting entry rotates so no entry always runs first. With
    // --predict each mode's step overheads (launch and round trip through its own kernels) are
    // sampled after every round, so that they see the host as the repeats do: taken once, before
    // or after the repeats, they caught its quiet or busy moments (lavapipe, per-op's launch
    // 1.8-4.3 ms a step in runs of one build).
    const before = new Map(executors.map(({ m, ex }) => [m.label, { ...ex.stats }]));
    const overheadRounds: StepOverheads[][] = executors.map(() => []);
    for (let r = 0; r < repeat; r++) {
      for (let i = 0; i < entries.length; i++) {
        const e = entries[(i + r) % entries.length]!;
        const t0 = performance.now();
        await e.run();
        e.times.push((performance.now() - t0) / 1000);
        tick(`${e.label} ${r + 1}/${repeat}`);
      }
      if (dm) for (const [i, { ex }] of executors.entries()) overheadRounds[i]!.push(await (ex as GpuExecutor).overheads(9));
    }

    // The weight bytes a step reads in their packed encodings (the same for every GPU mode).
    const anyGpu = executors.find(({ ex }) => 'layout' in ex)?.ex as GpuExecutor | undefined;
    const bytes = meanStepBytes(cfg, 0, tokens, anyGpu?.layout.weightBytesPerToken);
    const copyBps = copy.median;
    const results: ModeResult[] = executors.map(({ m, ex }) => {
      const e = entries.find((x) => x.label === m.label)!;
      const tps = e.times.map((s) => tokens / s);
      const med = median(tps);
      const b = before.get(m.label)!;
      const steps = tokens * repeat;
      const g = ex as GpuExecutor;
      // The prefill entries ran on this executor too: their dispatches are not decode's.
      const pre = prefillDispatches.get(m.label) ?? { dispatches: 0, submits: 0 };
      return {
        mode: m.label,
        tokensPerSecond: med,
        msPerToken: 1000 / med,
        dispatchesPerToken: (ex.stats.dispatches - b.dispatches - repeat * pre.dispatches) / steps,
        submitsPerToken: (ex.stats.submits - b.submits - repeat * pre.submits) / steps,
        bytesPerToken: bytes.total,
        achievedGBps: (bytes.total * med) / GB,
        percentOfCopyBandwidth: (100 * bytes.total * med) / copyBps,
        spread: spreadOf(tps),
        workgroups: ex.stats.workgroups,
        gridBarriersPerToken: g.gridBarriersPerToken,
        fallbacks: ex.stats.fallbacks - b.fallbacks,
      };
    });
    for (const r of results) if (r.fallbacks > 0) note(`${r.mode}: ${r.fallbacks} steps fell back to per-op dispatches after a grid-barrier timeout`);
    const peerResults: PeerResult[] = entries
      .filter((e) => e.kind === 'peer')
      .map((e) => {
        const tps = e.times.map((s) => e.tokens / s);
        return { name: e.label, tokensPerSecond: median(tps), spread: spreadOf(tps), tokens: e.tokens };
      });

    const prefill: PrefillResult[] = entries
      .filter((e) => e.kind === 'prefill')
      .map((e) => {
        const mode = e.label.replace(/ prefill$/, '');
        const tps = e.times.map((s) => e.tokens / s);
        return { mode, promptTokens: e.tokens, tokensPerSecond: median(tps), spread: spreadOf(tps), dispatches: prefillDispatches.get(mode)?.dispatches ?? 0, overDecode: median(tps) / (results.find((r) => r.mode === mode)?.tokensPerSecond ?? NaN) };
      });

    const speedups: Record<string, number> = {};
    const by = (l: string) => results.find((r) => r.mode === l)?.tokensPerSecond;
    for (const r of results) {
      if (!r.mode.startsWith('looped')) continue;
      for (const base of ['per-layer', 'per-op']) {
        const b = by(base);
        if (b) speedups[`${r.mode}/${base}`] = r.tokensPerSecond / b;
      }
    }

    const report: BenchReport = {
      device: { vendor: gpu.info.vendor, architecture: gpu.info.architecture, description: gpu.info.description },
      adapter: gpu.name,
      model: {
        name: synthetic ? model.name : basename(path ?? model.name).replace(/\.[^.]*$/, ''),
        synthetic,
        params: parameterCount(cfg),
        source: synthetic ? `synthetic shape ${o.shape}, seed ${o.seed ?? 1234}, ${o.type ?? 'f32'}` : (path ?? ''),
        weightTypes: typeSummary(modelMatrices(model.weights)),
        deviceBytes: anyGpu?.deviceBytes ?? 0,
        weightStore: !anyGpu ? 'none' : anyGpu.layout.kernel.texture === true ? 'texture' : 'storage',
        subgroups: anyGpu?.layout.kernel.subgroups ?? 0,
        padStaging: anyGpu?.layout.kernel.padStaging ?? false,
        workgroupSize: anyGpu?.layout.kernel.wg ?? 0,
        hostWait: gpu.wait === passThrough ? 'spin' : 'sleep',
      },
      date: new Date().toISOString(),
      command: o.command,
      tokens,
      repeat,
      copyBandwidthGBps: copyBps / GB,
      copyBandwidthSpread: { min: copy.min / GB, max: copy.max / GB, runs: copy.runs },
      results,
      peers: peerResults,
      ...(prefill.length > 0 && { prefill }),
      speedups,
      loadAverage: { start: loadStart, end: loadavg()[0]! },
      notes,
    };

    if (dm) {
      const p: DeviceParameters = deviceParameters(gpu.name, dm, (executors[0]!.ex as GpuExecutor).schedule);
      const meanContext = bytes.kvRead / (cfg.nLayers * 2 * cfg.nKvHeads * cfg.headDim * 4);
      // Launch and round trip per mode, through the executor's own kernels and submit path (a
      // large kernel costs more to launch than the microbenchmarks' empty one): the median step
      // of the rounds and its median round trip (medianOverheads); discovery, when a kernel runs
      // it, is inside the launch.
      const overheads: StepOverheads[] = overheadRounds.map(medianOverheads);
      report.predicted = executors.map(({ m, ex }, i) => {
        const g = ex as GpuExecutor;
        const s = modeStructure(g.schedule, m, g.gridBarriersPerToken, m.mode === 'per-op' ? undefined : g.stats.workgroups);
        const o = overheads[i]!;
        const perSubmit = s.dispatchesPerToken / s.submitsPerToken;
        // A launch too cheap to resolve through the submit path keeps the empty-kernel figure.
        const dispatchSeconds = o.launch > 0 ? o.launch / perSubmit : p.dispatchSeconds;
        const pm: DeviceParameters = { ...p, dispatchSeconds, roundTripSeconds: o.roundTrip, discoverSeconds: o.launch > 0 ? 0 : p.discoverSeconds };
        const pr = predictMode(cfg, model.name, pm, m, s, meanContext);
        const meas = results.find((r) => r.mode === m.label)!.tokensPerSecond;
        return {
          mode: m.label,
          predictedTokensPerSecond: pr.tokensPerSecond,
          measuredTokensPerSecond: meas,
          errorPercent: (100 * (pr.tokensPerSecond - meas)) / meas,
          breakdownMs: { kernel: pr.kernelSeconds * 1e3, dispatch: pr.dispatchSeconds * 1e3, barrier: pr.barrierSeconds * 1e3, roundTrip: pr.roundTripSeconds * 1e3 },
        };
      });
      report.deviceModel = {
        dispatchUs: p.dispatchSeconds * 1e6,
        roundTripUs: p.roundTripSeconds * 1e6,
        barrierUs: p.barrierSeconds * 1e6,
        discoverUs: p.discoverSeconds * 1e6,
        copyGBps: p.copyBytesPerSecond / GB,
        matvecGBps: p.matvecBytesPerSecond / GB,
        fusedMatvecGBps: p.fusedMatvecBytesPerSecond / GB,
        stageMsPerToken: { perOp: p.kernelSeconds.perOp * 1e3, fused: p.kernelSeconds.fused * 1e3, ...(p.kernelSeconds.cold !== undefined ? { cold: p.kernelSeconds.cold * 1e3 } : {}), ...(p.kernelSeconds.perLayer !== undefined ? { perLayer: p.kernelSeconds.perLayer * 1e3 } : {}) },
        stageUsPerCall: Object.fromEntries(Object.entries(dm.stageSeconds).map(([id, v]) => [id, { perOp: v.perOp.median * 1e6, fused: v.fused.median * 1e6 }])),
        barrierWorkgroups: dm.barrierGroups,
        barrierParticipants: dm.barrierParticipants.median,
        stepParticipants: dm.stepParticipants.median,
        measurements: dm,
      };
    }
    return report;
  } finally {
    gpu.wait = engineWait;
    await session.dispose();
    for (const p of peers) await p.dispose().catch(() => undefined);
  }
}

/** Copy bandwidth alone (without the rest of the device model). */
async function copyOnly(gpu: AcquiredDevice, layout: GpuExecutor['layout'], fusedGroups: number): Promise<Measured> {
  return measureCopyBandwidth({ device: gpu.device, layout, fusedGroups, cpu: gpu.cpu, wait: gpu.wait });
}
