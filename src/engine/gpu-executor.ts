/**
 * The WebGPU executors. One class runs the schedule in any of the three kernel shapes:
 *   per-op:    one dispatch per stage, a host round trip per token;
 *   per-layer: one dispatch per call (fused layer kernel), a host round trip per token;
 *   looped:    one dispatch per K tokens (all layers looped inside, tokens fed back on device).
 * A fused dispatch whose grid barrier times out raises the abort flag; the step is then re-run
 * with per-op dispatches (no cross-workgroup waits), and stats.fallbacks counts it (runSteps).
 * This file is the RUNNER (buffers, upload, occupancy, submit, fallback, step loop); WHAT runs is
 * the program (program.ts: looping pass, kernels, widths, barriers), composed by compose.ts from
 * the stage bodies and the grid synchronisation (kernels-wgsl/sync.wgsl.ts).
 */
import { KloopError, OptionError } from '../errors.ts';
import { BINDING, STEP_BYTES, packStep } from '../kernels-wgsl/common.wgsl.ts';
import type { LoadedModel } from '../loader/types.ts';
import { compileWgsl, computePipeline } from './compile.ts';
import { type BatchLayout, batchLayout, defaultChunk } from './batch-layout.ts';
import { BatchRunner } from './batch-runner.ts';
import { type AcquiredDevice, adapterKernel, cpuPerOpGroups, kernelWg, subgroupRowsAt } from './device.ts';
import { type StepOverheads, measureOverheads } from './overheads.ts';
import { type Executor, type ExecutorStats, type LogitsWanted, checkPositions, checkToken } from './interface.ts';
import { type KernelOptions, type Layout, MAX_TOKENS_PER_DISPATCH, makeLayout, packWeights, weightTypesOf } from './layout.ts';
import { GREEDY, type SamplingOptions } from './sampler.ts';
import { type Program, callGroups, fusedProgram, kernelSchedules, perOpProgram } from './program.ts';
import type { Schedule } from './schedule.ts';
import { type WeightStore, createWeightStore, storageBufferBytes } from './weight-store.ts';

export type GpuMode = 'per-op' | 'per-layer' | 'looped';

export interface GpuOptions {
  mode: GpuMode;
  /** Tokens per looped dispatch (K). */
  tokensPerDispatch?: number;
  /** KV-cache positions (default: the model's context, at most 2048). */
  context?: number;
  kernel?: Partial<KernelOptions>;
  /** Workgroups of a fused dispatch (default: discovered per adapter). */
  groups?: number;
  /** Tokens per batched-forward pass wanted (default per adapter and model, defaultChunk; capped by workgroup memory). */
  prefillChunk?: number;
  /** Spin iterations before a barrier gives up (tests force tiny bounds). */
  spinBound?: number;
  /** Poll budget of the occupancy leader in every step (default short; the probe polls long). */
  pollSpins?: number;
  /** Fill activations with NaN before every step, so unwritten values show. */
  poison?: boolean;
  log?: (s: string) => void;
}

interface Dispatch {
  pipeline: GPUComputePipeline;
  /** Index of the Dispatch uniform (layer, sync slot) it uses. */
  entry: number;
  groups: number;
}

interface StepParams {
  pos: number;
  nTokens: number;
  forced: number;
  inputs: number[];
  sampling: SamplingOptions;
  maxGroups: number;
  /** Sync slot whose discovered count is read back. */
  slot?: number;
  /** Poll budget of the occupancy leader (long for the probe, short for real steps). */
  pollSpins?: number;
}

const DISP_STRIDE = 256;
/** Occupancy probes are cached per adapter and kernel shape for the life of the process. */
const occupancyCache = new Map<string, number>();

export class GpuExecutor implements Executor {
  readonly mode: GpuMode;
  readonly layout: Layout;
  readonly schedule: Schedule;
  readonly loopNotes: string[];
  /** The schedule after the looping pass (what the looped mode compiles). */
  private readonly loopedSchedule: Schedule;
  readonly stats: ExecutorStats = { steps: 0, dispatches: 0, submits: 0, fallbacks: 0, workgroups: 0 };
  private readonly device: GPUDevice;
  private readonly gpu: AcquiredDevice;
  private readonly opts: GpuOptions;
  private readonly k: number;
  private lost: string | undefined;
  private readonly buffers: Record<'step' | 'disp' | 'kv' | 'act' | 'ctl' | 'staging', GPUBuffer>;
  private readonly weights: WeightStore;
  private readonly bindGroup: GPUBindGroup;
  private readonly pipelineLayout: GPUPipelineLayout;
  private perOp?: Dispatch[];
  private fused?: Dispatch[];
  private barriersPerToken = 0;
  /** Workgroups that took part in the last fused dispatch (occupancy discovery's count). */
  lastDiscovered = 0;
  readonly batch: BatchLayout; // the batched forward's layout: its T-row activations share `act`
  private batchRunner?: BatchRunner;
  /** Bytes of every device buffer this executor holds (weights once, packed; KV cache; activations). */
  readonly deviceBytes: number;
  private readonly spinBound: number;

  private constructor(model: LoadedModel, gpu: AcquiredDevice, opts: GpuOptions) {
    this.mode = opts.mode;
    this.opts = opts;
    this.gpu = gpu;
    const device = (this.device = gpu.device);
    const cfg = model.config;
    const limits = device.limits;
    const kernel = adapterKernel(gpu, opts.kernel, model.config.dim);
    const context = opts.context ?? Math.min(cfg.seqLen, 2048);
    if (!Number.isInteger(context) || context < 1 || context > cfg.seqLen) {
      throw new OptionError('context', `must be an integer in [1, ${cfg.seqLen}] for ${model.name} (got ${context})`);
    }
    this.layout = makeLayout(cfg, kernel, context, limits.maxComputeWorkgroupStorageSize, weightTypesOf(model.weights));
    this.batch = batchLayout(this.layout, limits.maxComputeWorkgroupStorageSize, opts.prefillChunk ?? defaultChunk(this.layout, limits.maxComputeWorkgroupStorageSize, gpu.cpu));
    this.k = opts.tokensPerDispatch ?? 1;
    if (!Number.isInteger(this.k) || this.k < 1 || this.k > MAX_TOKENS_PER_DISPATCH) {
      throw new OptionError('tokensPerDispatch', `must be an integer in [1, ${MAX_TOKENS_PER_DISPATCH}] (got ${this.k})`);
    }
    if (this.k > 1 && this.mode !== 'looped') {
      throw new OptionError('tokensPerDispatch', `only the looped mode decodes several tokens per dispatch (got ${this.k} with mode ${this.mode})`);
    }
    this.spinBound = opts.spinBound ?? (gpu.cpu ? 1 << 24 : 1 << 22);
    const kernels = kernelSchedules(cfg);
    this.schedule = kernels.schedule;
    this.loopNotes = kernels.notes;
    this.loopedSchedule = kernels.looped;

    device.lost.then((info) => {
      this.lost = info.message || info.reason || 'unknown reason';
    });

    // Buffers. Sizes are checked against the adapter's limits before anything is allocated.
    const s = this.layout.sizes;
    const check = (name: string, floats: number): number => storageBufferBytes(limits, floats, name, model.name, gpu.info.description);
    const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    const mk = (label: string, size: number, usage: number) => device.createBuffer({ label, size, usage });
    const stagingBytes = Math.max(s.ctl, s.act) * 4;
    this.buffers = {
      step: mk('step', 256, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
      disp: mk('dispatch', DISP_STRIDE * this.layout.maxSlots, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
      kv: mk('kv', check('KV cache', s.kv), storage),
      act: mk('act', check('activation', this.batch.actWords), storage),
      ctl: mk('ctl', check('control', s.ctl), storage),
      staging: mk('staging', Math.ceil(stagingBytes / 16) * 16, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST),
    };
    this.weights = createWeightStore(device, this.layout, model.name, gpu.info.description, packWeights(model, this.layout));
    this.deviceBytes = Object.values(this.buffers).reduce((a, b) => a + b.size, 0) + this.weights.bytes;

    // One Dispatch uniform per call of the per-layer schedule: (layer, sync slot).
    const disp = new Uint32Array((DISP_STRIDE / 4) * this.layout.maxSlots);
    this.schedule.calls.forEach((call, i) => {
      disp[(i * DISP_STRIDE) / 4] = call.kind === 'layer' ? call.layer : 0;
      disp[(i * DISP_STRIDE) / 4 + 1] = i;
    });
    device.queue.writeBuffer(this.buffers.disp, 0, disp);

    if (limits.maxStorageBuffersPerShaderStage < 8) {
      throw new KloopError(`${gpu.info.description}: kloop needs 8 storage buffers per shader stage; this adapter offers ${limits.maxStorageBuffersPerShaderStage}`);
    }
    const B = BINDING;
    const bgl = device.createBindGroupLayout({
      entries: [
        { binding: B.step, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
        { binding: B.disp, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
        ...this.weights.layoutEntries,
        ...[B.kv, B.act, B.ctl].map((binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' as const } })),
      ],
    });
    this.pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [bgl] });
    const b = this.buffers;
    this.bindGroup = device.createBindGroup({
      layout: bgl,
      entries: [
        { binding: B.step, resource: { buffer: b.step, size: STEP_BYTES } },
        { binding: B.disp, resource: { buffer: b.disp, size: 8 } },
        ...this.weights.bindEntries,
        { binding: B.kv, resource: { buffer: b.kv } },
        { binding: B.act, resource: { buffer: b.act } },
        { binding: B.ctl, resource: { buffer: b.ctl } },
      ],
    });
  }

  static async create(model: LoadedModel, gpu: AcquiredDevice, opts: GpuOptions): Promise<GpuExecutor> {
    await subgroupRowsAt(gpu, kernelWg(gpu, opts.kernel, model.config.dim)); // the probe at this workgroup size, for adapterKernel
    const ex = new GpuExecutor(model, gpu, opts);
    await ex.build();
    return ex;
  }

  private compile = (code: string, label: string): Promise<GPUShaderModule> => compileWgsl(this.device, code, label);
  private pipeline = (module: GPUShaderModule, entryPoint: string): Promise<GPUComputePipeline> => computePipeline(this.device, this.pipelineLayout, module, entryPoint);
  /** Compiles a program: one pipeline per entry point. */
  private async pipelines(p: Program): Promise<Map<string, GPUComputePipeline>> {
    const module = await this.compile(p.code, p.label);
    const pipes = new Map<string, GPUComputePipeline>();
    for (const c of p.calls) if (!pipes.has(c.entryPoint)) pipes.set(c.entryPoint, await this.pipeline(module, c.entryPoint));
    return pipes;
  }

  private async buildPerOp(): Promise<Dispatch[]> {
    if (this.perOp) return this.perOp;
    const p = perOpProgram(this.schedule, this.layout);
    const pipes = await this.pipelines(p);
    const maxGroups = Math.min(this.device.limits.maxComputeWorkgroupsPerDimension, this.gpu.cpu ? cpuPerOpGroups() : Infinity);
    this.perOp = p.calls.map((c) => ({ pipeline: pipes.get(c.entryPoint)!, entry: c.entry, groups: Math.min(c.width, maxGroups) }));
    return this.perOp;
  }

  private async build(): Promise<void> {
    if (this.mode === 'per-op') {
      await this.buildPerOp();
      return;
    }
    // Workgroups of a fused dispatch: given, or one on CPU adapters (their invocations are SIMD
    // lanes of one thread: a second workgroup costs spin barriers and atomic hand-offs, which
    // are slow there), or discovered on GPUs. Several workgroups hand activations over through
    // atomics; a single one keeps them plain.
    let groups = this.opts.groups;
    if (groups !== undefined && (!Number.isInteger(groups) || groups < 1)) {
      throw new OptionError('groups', `must be a positive integer (got ${groups})`);
    }
    groups ??= this.gpu.cpu ? 1 : undefined;
    let fused = await this.compileFused(groups === 1 ? 'plain' : 'atomic');
    if (groups === undefined) {
      groups = await this.occupancy(fused.probe.pipeline, fused.probe.entry, fused.widest);
      if (groups === 1) fused = await this.compileFused('plain');
    }
    this.fused = fused.dispatches(groups);
    this.barriersPerToken = fused.barriersPerToken;
    this.stats.workgroups = groups;
  }

  /** Compiles the fused program of this mode with the given activation hand-off. */
  private async compileFused(handoff: 'atomic' | 'plain'): Promise<{
    dispatches: (groups: number) => Dispatch[];
    probe: { pipeline: GPUComputePipeline; entry: number };
    widest: number;
    barriersPerToken: number;
  }> {
    const maxGroups = this.device.limits.maxComputeWorkgroupsPerDimension;
    const p = fusedProgram(this.mode as 'per-layer' | 'looped', { schedule: this.schedule, looped: this.loopedSchedule }, this.layout, handoff);
    const pipes = await this.pipelines(p);
    const probe = p.calls[p.probe]!;
    return {
      dispatches: (groups) => {
        const n = callGroups(p, groups, handoff, maxGroups);
        return p.calls.map((c, i) => ({ pipeline: pipes.get(c.entryPoint)!, entry: c.entry, groups: n[i]! }));
      },
      probe: { pipeline: pipes.get(probe.entryPoint)!, entry: probe.entry },
      widest: p.widest,
      barriersPerToken: p.barriersPerToken,
    };
  }

  /**
   * Workgroups for a fused kernel on this adapter: dispatch many with n_tokens = 0 (the kernel
   * only runs occupancy discovery) and keep the most that were found co-resident, capped by the
   * widest stage's work. Cached per adapter and kernel.
   */
  private async occupancy(pipeline: GPUComputePipeline, entry: number, widest: number): Promise<number> {
    const key = `${this.gpu.name}|${this.mode}|${JSON.stringify(this.layout.consts)}`;
    const cached = occupancyCache.get(key);
    if (cached) return Math.min(cached, widest);
    const probe = Math.min(this.gpu.cpu ? 64 : 2048, this.device.limits.maxComputeWorkgroupsPerDimension);
    let best = 1;
    for (let i = 0; i < 3; i++) {
      const r = await this.submit([{ pipeline, entry, groups: probe }], {
        pos: 0, nTokens: 0, forced: 0, inputs: [], sampling: GREEDY, maxGroups: probe, slot: entry,
        pollSpins: this.gpu.cpu ? 1 << 20 : 1 << 14,
      });
      best = Math.max(best, r.count);
    }
    occupancyCache.set(key, best);
    return Math.min(best, widest);
  }

  private writeStep(p: StepParams): void {
    const step = packStep({
      pos: p.pos, n_tokens: p.nTokens, forced: p.forced, seed: p.sampling.seed, temperature: p.sampling.temperature,
      top_k: p.sampling.topK, top_p: p.sampling.topP, spin_bound: this.opts.spinBound ?? this.spinBound,
      // poll budget of the occupancy leader
      poll_spins: p.pollSpins ?? this.opts.pollSpins ?? (this.gpu.cpu ? 1 << 14 : 1 << 12),
      max_groups: p.maxGroups,
    });
    this.device.queue.writeBuffer(this.buffers.step, 0, step);
  }

  /** Encode, submit and read back one batch of dispatches. */
  private async submit(
    dispatches: Dispatch[],
    p: StepParams,
    wantLogits = false,
  ): Promise<{ tokens: Uint32Array; aborted: boolean; count: number; logits?: Float32Array }> {
    if (this.lost) throw new KloopError(`WebGPU device lost: ${this.lost}`);
    const { device, buffers: b, layout } = this;
    const k = layout.consts;
    this.writeStep(p);
    device.queue.writeBuffer(b.ctl, k.C_TOKENS * 4, Uint32Array.from(p.inputs));
    if (this.opts.poison) {
      const nan = new Uint32Array(layout.sizes.act).fill(0x7fc00000);
      device.queue.writeBuffer(b.act, 0, nan);
    }
    const enc = device.createCommandEncoder();
    enc.clearBuffer(b.ctl, 0, 16);
    enc.clearBuffer(b.ctl, k.C_SLOTS * 4, layout.maxSlots * k.SLOT_WORDS * 4);
    const pass = enc.beginComputePass();
    let last: GPUComputePipeline | undefined;
    for (const d of dispatches) {
      if (d.pipeline !== last) pass.setPipeline((last = d.pipeline));
      pass.setBindGroup(0, this.bindGroup, [d.entry * DISP_STRIDE]);
      pass.dispatchWorkgroups(d.groups);
    }
    pass.end();
    const ctlBytes = layout.sizes.ctl * 4;
    enc.copyBufferToBuffer(b.ctl, 0, b.staging, 0, ctlBytes);
    const logitsAt = Math.ceil(ctlBytes / 256) * 256;
    if (wantLogits) enc.copyBufferToBuffer(b.act, k.A_LOGITS * 4, b.staging, logitsAt, k.VOCAB * 4);
    device.queue.submit([enc.finish()]);
    this.stats.dispatches += dispatches.length;
    this.stats.submits += 1;
    try {
      await this.gpu.wait(b.staging.mapAsync(GPUMapMode.READ, 0, wantLogits ? logitsAt + k.VOCAB * 4 : ctlBytes));
    } catch (e) {
      throw new KloopError(`WebGPU device lost: ${this.lost ?? (e as Error).message}`);
    }
    const ctl = new Uint32Array(b.staging.getMappedRange(0, ctlBytes).slice(0));
    const logits = wantLogits ? new Float32Array(b.staging.getMappedRange(logitsAt, k.VOCAB * 4).slice(0)) : undefined;
    b.staging.unmap();
    const slot = k.C_SLOTS + (p.slot ?? 0) * k.SLOT_WORDS;
    return {
      tokens: ctl.slice(k.C_TOKENS, k.C_TOKENS + MAX_TOKENS_PER_DISPATCH + 1),
      aborted: ctl[k.C_ABORT] !== 0,
      count: ctl[slot + 1],
      logits,
    };
  }

  /** Runs `n` steps from `pos` in this executor's shape, falling back to per-op on abort. */
  private async runSteps(
    pos: number, inputs: number[], n: number, sampling: SamplingOptions, wantLogits: boolean,
  ): Promise<{ tokens: Uint32Array; logits?: Float32Array }> {
    const forced = inputs.length;
    if (this.mode !== 'per-op') {
      const fused = this.fused!;
      const r = await this.submit(
        fused,
        { pos, nTokens: n, forced, inputs, sampling, maxGroups: this.stats.workgroups, slot: this.mode === 'looped' ? 0 : this.schedule.calls.findIndex((c) => c.kind === 'layer') },
        wantLogits,
      );
      this.lastDiscovered = r.count;
      if (!r.aborted) return r;
      this.stats.fallbacks += 1;
      this.stats.dispatches -= fused.length;
      this.stats.submits -= 1;
      this.opts.log?.(`kloop: grid barrier timed out at position ${pos}; re-running with per-op dispatches`);
    }
    // per-op: one token per submit, the sampled token read back and fed in by the host.
    const perOp = await this.buildPerOp();
    const tokens = new Uint32Array(MAX_TOKENS_PER_DISPATCH + 1);
    tokens[0] = inputs[0];
    let logits: Float32Array | undefined;
    for (let j = 0; j < n; j++) {
      const input = j < inputs.length ? inputs[j] : tokens[j];
      const r = await this.submit(perOp, { pos: pos + j, nTokens: 1, forced: 1, inputs: [input], sampling, maxGroups: 1 }, wantLogits);
      if (j + 1 >= forced) tokens[j + 1] = r.tokens[1];
      else tokens[j + 1] = inputs[j + 1];
      logits = r.logits;
    }
    return { tokens, logits };
  }

  async forward(token: number, pos: number): Promise<Float32Array> {
    checkToken(token, this.layout.config.vocabSize, 'input');
    checkPositions(pos, 1, this.layout.context);
    const r = await this.runSteps(pos, [token], 1, GREEDY, true);
    this.stats.steps += 1;
    return r.logits!;
  }

  async decode(inputs: number[], pos: number, steps: number, sampling: SamplingOptions): Promise<number[]> {
    if (inputs.length < 1 || steps < inputs.length) throw new Error('decode: needs >= 1 input and steps >= inputs');
    inputs.forEach((t) => checkToken(t, this.layout.config.vocabSize, 'input'));
    checkPositions(pos, steps, this.layout.context);
    const out: number[] = [];
    const chunk = this.mode === 'looped' ? this.k : 1;
    let last = inputs[0];
    for (let g = 0; g < steps; ) {
      const n = Math.min(chunk, steps - g);
      const given = inputs.slice(g, g + n);
      const chunkInputs = given.length > 0 ? given : [last];
      const r = await this.runSteps(pos + g, chunkInputs, n, sampling, false);
      for (let j = 0; j < n; j++) {
        if (g + j >= inputs.length - 1) {
          const t = r.tokens[j + 1];
          checkToken(t, this.layout.config.vocabSize, `step at position ${pos + g + j} (non-finite logits?)`);
          out.push(t);
        }
      }
      last = r.tokens[n];
      g += n;
    }
    this.stats.steps += steps;
    return out;
  }

  /** Feeds tokens at pos, pos+1, ... through the batched forward (batch-runner.ts), T per weight read. */
  forwardMany(tokens: number[], pos: number, want: LogitsWanted = 'all'): Promise<Float32Array[]> {
    const { device, gpu, mode, pipelineLayout, bindGroup, buffers, stats, opts } = this;
    const host = { device, gpu, mode, pipelineLayout, bindGroup, buffers, stats, dispStride: DISP_STRIDE, spinBound: opts.spinBound ?? this.spinBound, pollSpins: opts.pollSpins ?? (gpu.cpu ? 1 << 14 : 1 << 12), lost: () => this.lost, log: opts.log, poison: opts.poison };
    return (this.batchRunner ??= new BatchRunner(this.batch, host)).run(tokens, pos, want);
  }

  /** Fused-kernel barriers per token (0 for per-op). */
  get gridBarriersPerToken(): number { return this.barriersPerToken; }

  /**
   * Launch and round-trip seconds of one step of this mode, measured with its own kernels
   * (overheads.ts). Its submits are not counted in `stats` (they are not the executor's work).
   */
  async overheads(repeats = 31): Promise<StepOverheads> {
    const one = this.mode === 'per-op' ? (this.perOp ?? (await this.buildPerOp())) : this.fused!;
    const params = { pos: 0, nTokens: 0, forced: 0, inputs: [], sampling: GREEDY, maxGroups: this.stats.workgroups || 1 };
    const { dispatches, submits } = this.stats;
    try {
      return await measureOverheads((copies) => this.submit(Array.from({ length: copies }, () => one).flat(), params), repeats);
    } finally {
      this.stats.dispatches = dispatches;
      this.stats.submits = submits;
    }
  }

  destroy(): void {
    for (const b of Object.values(this.buffers)) b.destroy();
    this.weights.destroy();
    this.batchRunner?.destroy();
  }
}

