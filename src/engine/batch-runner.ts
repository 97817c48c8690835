/**
 * The runner of the batched forward: tokens go through the model CHUNK at a time, every weight
 * read once per chunk (matmul instead of matvec), causal attention among the chunk's tokens and
 * against the KV cache, the KV cache advanced for every token. The kernel shape follows the
 * executor's mode: per-op (one dispatch per stage), per-layer (one fused dispatch per layer
 * call) or looped (ONE dispatch runs all layers of a chunk). It shares the executor's device,
 * buffers and bind group (gpu-executor.ts), so decoding continues from the positions it filled.
 * A fused dispatch whose grid barrier times out is re-run with the per-op batched dispatches.
 */
import { KloopError } from '../errors.ts';
import { STEP_BYTES, packStep } from '../kernels-wgsl/common.wgsl.ts';
import { compileWgsl, computePipeline } from './compile.ts';
import type { BatchLayout } from './batch-layout.ts';
import type { AcquiredDevice } from './device.ts';
import { type ExecutorStats, type LogitsWanted, checkPositions, checkToken } from './interface.ts';
import { type Program, callGroups, fusedProgram, kernelSchedules, perOpProgram } from './program.ts';
import type { Schedule } from './schedule.ts';

/** What the runner shares with its executor. */
export interface BatchHost {
  device: GPUDevice;
  gpu: AcquiredDevice;
  mode: 'per-op' | 'per-layer' | 'looped';
  pipelineLayout: GPUPipelineLayout;
  bindGroup: GPUBindGroup;
  buffers: { step: GPUBuffer; ctl: GPUBuffer; act: GPUBuffer };
  /** Bytes between the Dispatch uniforms of consecutive calls. */
  dispStride: number;
  stats: ExecutorStats;
  spinBound: number;
  pollSpins: number;
  lost: () => string | undefined;
  log?: (s: string) => void;
  /** Fill the activations (logits rows included) with NaN before every pass (tests: no stale row passes). */
  poison?: boolean;
}

interface Dispatch {
  pipeline: GPUComputePipeline;
  entry: number;
  groups: number;
}

/** The decode schedules without the sampling call: the batched forward ends with the logits. */
export function batchedSchedules(cfg: Parameters<typeof kernelSchedules>[0]): { schedule: Schedule; looped: Schedule } {
  const { schedule, looped } = kernelSchedules(cfg);
  const drop = (s: Schedule): Schedule => ({ calls: s.calls.filter((c) => !c.stages.includes('sample')) });
  return { schedule: drop(schedule), looped: drop(looped) };
}

export class BatchRunner {
  private perOp?: Dispatch[];
  private fused?: Dispatch[];
  private readonly staging: GPUBuffer;
  private readonly ctlBytes: number;
  private readonly logitsAt: number;
  private nan?: Uint32Array;

  constructor(
    readonly batch: BatchLayout,
    private readonly host: BatchHost,
  ) {
    const L = batch.layout;
    this.ctlBytes = L.sizes.ctl * 4;
    this.logitsAt = Math.ceil(this.ctlBytes / 256) * 256;
    const size = this.logitsAt + batch.chunk * L.config.vocabSize * 4;
    this.staging = host.device.createBuffer({ label: 'batch-staging', size: Math.ceil(size / 16) * 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  /** Tokens per pass (the chunk size chosen for this adapter). */
  get chunk(): number {
    return this.batch.chunk;
  }

  private async pipelines(p: Program): Promise<Map<string, GPUComputePipeline>> {
    const module = await compileWgsl(this.host.device, p.code, `batched ${p.label}`);
    const pipes = new Map<string, GPUComputePipeline>();
    for (const c of p.calls) if (!pipes.has(c.entryPoint)) pipes.set(c.entryPoint, await computePipeline(this.host.device, this.host.pipelineLayout, module, c.entryPoint));
    return pipes;
  }

  private async buildPerOp(): Promise<Dispatch[]> {
    if (this.perOp) return this.perOp;
    const p = perOpProgram(batchedSchedules(this.batch.layout.config).schedule, this.batch.layout);
    const pipes = await this.pipelines(p);
    const maxGroups = this.host.device.limits.maxComputeWorkgroupsPerDimension;
    this.perOp = p.calls.map((c) => ({ pipeline: pipes.get(c.entryPoint)!, entry: c.entry, groups: Math.min(c.width, maxGroups) }));
    return this.perOp;
  }

  /** The fused batched program of this mode, as wide as the decode kernels (probed again: it holds more workgroup memory). */
  private async buildFused(): Promise<Dispatch[]> {
    if (this.fused) return this.fused;
    const mode = this.host.mode as 'per-layer' | 'looped';
    const groups = Math.max(1, this.host.stats.workgroups);
    const handoff = groups === 1 ? 'plain' : 'atomic';
    const p = fusedProgram(mode, batchedSchedules(this.batch.layout.config), this.batch.layout, handoff);
    const pipes = await this.pipelines(p);
    const maxGroups = this.host.device.limits.maxComputeWorkgroupsPerDimension;
    const make = (g: number): Dispatch[] => {
      const n = callGroups(p, g, handoff, maxGroups);
      return p.calls.map((c, i) => ({ pipeline: pipes.get(c.entryPoint)!, entry: c.entry, groups: n[i]! }));
    };
    let width = groups;
    if (groups > 1) {
      const probe = p.calls[p.probe]!;
      const r = await this.submit([{ pipeline: pipes.get(probe.entryPoint)!, entry: probe.entry, groups }], 0, [], groups, probe.entry, 0, 1 << 14);
      width = Math.max(1, Math.min(groups, r.count));
    }
    this.fused = make(width);
    return this.fused;
  }

  private async submit(
    dispatches: Dispatch[], pos: number, tokens: number[], maxGroups: number, slot: number, logitsRows: number, pollSpins?: number,
  ): Promise<{ aborted: boolean; count: number; logits?: Float32Array }> {
    const h = this.host;
    const lost = h.lost();
    if (lost) throw new KloopError(`WebGPU device lost: ${lost}`);
    const { device } = h;
    const k = this.batch.layout.consts;
    const nt = tokens.length;
    const wantLogits = logitsRows > 0 && nt > 0;
    // `forced`: how many of the chunk's last tokens get logits (the classifier skips the others).
    const step = packStep({
      pos, n_tokens: nt, forced: Math.min(logitsRows, nt), seed: 0, temperature: 0, top_k: 0, top_p: 1,
      spin_bound: h.spinBound, poll_spins: pollSpins ?? h.pollSpins, max_groups: maxGroups,
    });
    device.queue.writeBuffer(h.buffers.step, 0, step, 0, STEP_BYTES);
    if (nt > 0) device.queue.writeBuffer(h.buffers.ctl, k.C_TOKENS * 4, Uint32Array.from(tokens));
    if (h.poison) device.queue.writeBuffer(h.buffers.act, 0, (this.nan ??= new Uint32Array(h.buffers.act.size / 4).fill(0x7fc00000)));
    const enc = device.createCommandEncoder();
    enc.clearBuffer(h.buffers.ctl, 0, 16);
    enc.clearBuffer(h.buffers.ctl, k.C_SLOTS * 4, this.batch.layout.maxSlots * k.SLOT_WORDS * 4);
    const pass = enc.beginComputePass();
    let last: GPUComputePipeline | undefined;
    for (const d of dispatches) {
      if (d.pipeline !== last) pass.setPipeline((last = d.pipeline));
      pass.setBindGroup(0, h.bindGroup, [d.entry * h.dispStride]);
      pass.dispatchWorkgroups(d.groups);
    }
    pass.end();
    enc.copyBufferToBuffer(h.buffers.ctl, 0, this.staging, 0, this.ctlBytes);
    const V = this.batch.layout.config.vocabSize;
    if (wantLogits) enc.copyBufferToBuffer(h.buffers.act, k.B_LOGITS * 4, this.staging, this.logitsAt, nt * V * 4);
    device.queue.submit([enc.finish()]);
    h.stats.dispatches += dispatches.length;
    h.stats.submits += 1;
    try {
      await h.gpu.wait(this.staging.mapAsync(GPUMapMode.READ));
    } catch (e) {
      throw new KloopError(`WebGPU device lost: ${h.lost() ?? (e as Error).message}`);
    }
    const ctl = new Uint32Array(this.staging.getMappedRange(0, this.ctlBytes).slice(0));
    const logits = wantLogits ? new Float32Array(this.staging.getMappedRange(this.logitsAt, nt * V * 4).slice(0)) : undefined;
    this.staging.unmap();
    return { aborted: ctl[k.C_ABORT] !== 0, count: ctl[k.C_SLOTS + slot * k.SLOT_WORDS + 1], logits };
  }

  /** One chunk (<= CHUNK tokens) at `pos` with the logits of its last `logitsRows` tokens, falling back to per-op dispatches on abort. */
  private async chunkPass(tokens: number[], pos: number, logitsRows: number): Promise<Float32Array | undefined> {
    if (this.host.mode !== 'per-op') {
      const fused = await this.buildFused();
      const slot = this.host.mode === 'looped' ? 0 : 1;
      const r = await this.submit(fused, pos, tokens, Math.max(...fused.map((d) => d.groups)), slot, logitsRows);
      if (!r.aborted) return r.logits;
      this.host.stats.fallbacks += 1;
      this.host.log?.(`kloop: grid barrier timed out in the batched forward at position ${pos}; re-running with per-op dispatches`);
    }
    const r = await this.submit(await this.buildPerOp(), pos, tokens, 1, 0, logitsRows);
    return r.logits;
  }

  /**
   * Feeds `tokens` at positions pos, pos+1, ... (CHUNK per pass) and returns the logits rows
   * asked for: one per token ('all'), the last token's ('last'), or none. No tokens: only builds the kernels.
   */
  async run(tokens: number[], pos: number, want: LogitsWanted): Promise<Float32Array[]> {
    const L = this.batch.layout;
    const V = L.config.vocabSize;
    tokens.forEach((t) => checkToken(t, V, 'input'));
    checkPositions(pos, tokens.length, L.context);
    const out: Float32Array[] = [];
    // No tokens: build the kernels only (so a caller can time the forward without compilation).
    if (tokens.length === 0) await (this.host.mode === 'per-op' ? this.buildPerOp() : this.buildFused());
    for (let i = 0; i < tokens.length; i += this.chunk) {
      const part = tokens.slice(i, i + this.chunk);
      const lastChunk = i + this.chunk >= tokens.length;
      const logitsRows = want === 'all' ? part.length : want === 'last' && lastChunk ? 1 : 0;
      const logits = await this.chunkPass(part, pos + i, logitsRows);
      this.host.stats.steps += part.length;
      if (!logits) continue;
      const rows = part.map((_, j) => logits.subarray(j * V, (j + 1) * V));
      if (want === 'all') out.push(...rows);
      else if (lastChunk) out.push(rows[rows.length - 1]!);
    }
    return out;
  }

  destroy(): void {
    this.staging.destroy();
  }
}
