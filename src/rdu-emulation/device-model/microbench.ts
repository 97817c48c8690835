/**
 * Microbenchmarks of a WebGPU adapter: the parameters of the device model (model.ts).
 *
 *   dispatch      many tiny dependent dispatches in ONE compute pass -> seconds per dispatch
 *   round trip    write the step uniform, clear, copy the control words back, submit, mapAsync:
 *                 what the executor pays per submit, with no dispatch in it -> seconds
 *   copy          a vec4 copy kernel over a 64 MiB buffer (repeated in one submit to outlast ten
 *                 round trips) -> bytes read + written per second
 *   matvec        the engine's own gate_up stage (matvec role) streaming a model's stacked FFN
 *                 weights, all layers, in one dispatch -> weight bytes per second
 *   stages        each of the engine's stage bodies (compose.ts stageFunctions: norms, matvecs,
 *                 RoPE, attention at the run's mean position, sampling) called R times in a loop
 *                 inside one dispatch at the fused width, and as R one-call dispatches at the
 *                 per-op width (launch included) -> seconds per call; and a whole
 *                 token's stages in schedule order (every layer's weights walked) at the fused
 *                 width -> the in-context factor the model scales their sum by
 *   grid barrier  the engine's own occupancy discovery + grid_sync (sync.wgsl.ts), B barriers in
 *                 one dispatch over the fused kernels' workgroup count -> seconds per barrier,
 *                 and the discovery cost of one fused dispatch
 *
 * Every figure is the median of several timed runs after a warm-up run (which also keeps the
 * driver's shader compilation out of the figure). Times are host wall clock around submit and
 * completion, like the executor's.
 */
import { BINDING, type Handoff } from '../../kernels-wgsl/common.wgsl.ts';
import { matvecItems, matvecLanes } from '../../kernels-wgsl/matvec.wgsl.ts';
import { compileWgsl as compileModule, computePipeline } from '../../engine/compile.ts';
import { createWeightStore } from '../../engine/weight-store.ts';
import { cpuPerOpGroups } from '../../engine/device.ts';
import type { StageId } from '../../engine/schedule.ts';
import type { Layout } from '../../engine/layout.ts';
import { KloopError } from '../../errors.ts';
import { median } from '../../engine/counts.ts';
import { COPY_WGSL, TINY_WGSL, barrierWgsl, matvecWgsl } from './kernels.ts';
import { type Measured, measured, timed, timedRead } from './measure.ts';
import { measureStages } from './stage-bench.ts';
import type { Waiter } from '../../engine/host-wait.ts';

const compile = (device: GPUDevice, code: string, label: string) => compileModule(device, code, `microbenchmark ${label}`);
const pipeline = (device: GPUDevice, module: GPUShaderModule, entryPoint: string) => computePipeline(device, 'auto', module, entryPoint);

export interface MicrobenchOptions {
  /** Timed runs per figure (median reported). Default 7. */
  repeats?: number;
  /** Copy buffer size in bytes (default 64 MiB, capped by the adapter's binding limit). */
  copyBytes?: number;
  /** Poll budget of the occupancy leader in the barrier benchmark (default: the executor's probe budget). */
  pollSpins?: number;
  /** Position the attention stage is timed at (the run's mean position); default 0. */
  pos?: number;
  /** Called after each microbenchmark (progress). */
  onStep?: (name: string) => void;
}

export interface DeviceMeasurements {
  /** Seconds per extra dispatch in one compute pass (dependent, tiny). */
  dispatchSeconds: Measured;
  /** Seconds of one submit + readback with no dispatch (the executor's per-submit cost). */
  roundTripSeconds: Measured;
  /** Bytes read + written per second by a copy kernel. */
  copyBytesPerSecond: Measured;
  /** Weight bytes per second streamed by the engine's matvec (gate_up) on the model's shapes, one workgroup per row tile (per-op). */
  matvecBytesPerSecond: Measured;
  /** The same over the workgroups a fused dispatch runs with (the discovered participants). */
  fusedMatvecBytesPerSecond: Measured;
  /** Seconds per grid barrier over `barrierGroups` workgroups. */
  barrierSeconds: Measured;
  /** Seconds occupancy discovery adds to a fused dispatch (over an empty dispatch). */
  discoverSeconds: Measured;
  /**
   * Seconds per call of each engine stage: at the per-op width one dispatch of one call, its
   * launch included; at the fused width a call inside a running dispatch.
   */
  stageSeconds: Record<StageId, { perOp: Measured; fused: Measured }>;
  /**
   * Seconds of one token's stages in the schedule's order over every layer, at the fused width:
   * the stages with the weights walked as a token walks them (each stage repeated alone keeps
   * its own weights in the CPU's caches).
   */
  tokenStagesSeconds: Measured;
  /**
   * Seconds the whole token's stages add to ONE dispatch that runs them once (fused width),
   * over the same dispatch with no work: the first token of a dispatch starts with the caches
   * the host left (lavapipe: 10-20% over tokenStagesSeconds).
   */
  tokenColdSeconds: Measured;
  /**
   * Seconds a token's per-op dispatches (each stage's call of the token, in schedule order, at
   * the per-op width, in one pass) take over the same dispatches with no work: what per-op adds
   * to its launches (a dispatch after a different one runs colder than a repeated one).
   */
  perOpTokenSeconds: Measured;
  /**
   * The same for a token's per-layer dispatches (a decoder layer's stages a dispatch); measured
   * only where the fused kernels run several workgroups. With one, the per-layer dispatches run
   * the cold token's bodies in turn and the model takes tokenColdSeconds (stage-bench.ts).
   */
  perLayerTokenSeconds?: Measured;
  /** Workgroups dispatched in the barrier benchmark (the fused kernels' count). */
  barrierGroups: number;
  /** Workgroups that occupancy discovery let take part in the barriers (per run). */
  barrierParticipants: Measured;
  /** Workgroups that join with the poll budget of the executor's real steps (per run). */
  stepParticipants: Measured;
}

export { median, measured };
export type { Measured };

export interface MicrobenchTarget {
  device: GPUDevice;
  /** The executor's layout for the model (kernel options, constants, FFN shapes). */
  layout: Layout;
  /** Workgroups of the engine's fused dispatches on this adapter (executor.stats.workgroups). */
  fusedGroups: number;
  /** CPU adapter: spin and poll budgets as the executor sets them. */
  cpu: boolean;
  /** How the host waits for readbacks: the executor's waiter (AcquiredDevice.wait). */
  wait?: Waiter;
}

/**
 * Runs every microbenchmark on `t.device`. Throws a KloopError when a barrier benchmark aborts
 * (the workgroups were not co-resident).
 */
export async function measureDevice(t: MicrobenchTarget, opts: MicrobenchOptions = {}): Promise<DeviceMeasurements> {
  return (await measure(t, opts, false)) as DeviceMeasurements;
}

/** Copy bandwidth alone (bytes read + written per second), with the round trip it subtracts. */
export async function measureCopyBandwidth(t: MicrobenchTarget, opts: MicrobenchOptions = {}): Promise<Measured> {
  return (await measure(t, opts, true)) as Measured;
}

/** In a validation error scope: a kernel or binding the device rejects would otherwise time empty work. */
async function measure(t: MicrobenchTarget, opts: MicrobenchOptions, copyOnly: boolean): Promise<DeviceMeasurements | Measured> {
  t.device.pushErrorScope('validation');
  const out = await measureAll(t, opts, copyOnly).catch(async (e: unknown) => { await t.device.popErrorScope(); throw e; });
  const err = await t.device.popErrorScope();
  if (err) throw new KloopError(`microbenchmarks: the device rejected a kernel or binding: ${err.message}`);
  return out;
}

async function measureAll(t: MicrobenchTarget, opts: MicrobenchOptions, copyOnly: boolean): Promise<DeviceMeasurements | Measured> {
  const { device, layout } = t;
  const host = { device, wait: t.wait };
  const R = Math.max(1, opts.repeats ?? 7);
  const step = opts.onStep ?? (() => undefined);
  const storage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const created: { destroy(): void }[] = [];
  const buf = (size: number, usage = storage, label = 'bench'): GPUBuffer => {
    const b = device.createBuffer({ size, usage, label });
    created.push(b);
    return b;
  };
  const staging = buf(4096, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, 'staging');
  const small = buf(256);
  try {
    // Round trip: what a submit with no dispatch costs (uniform write, clear, copy, map).
    const uni = buf(256, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const rtOnce = () => {
      device.queue.writeBuffer(uni, 0, new Uint32Array(12));
      return timed(host, staging, small, (enc) => enc.clearBuffer(small, 0, 16));
    };
    await rtOnce();
    const rt: number[] = [];
    for (let i = 0; i < Math.max(R, 15); i++) rt.push(await rtOnce());
    const roundTrip = measured(rt);
    step('round trip');

    // Dispatch: N dependent tiny dispatches in one pass, against one.
    const tinyPipe = await pipeline(device, await compile(device, TINY_WGSL, 'tiny'), 'tiny');
    const tinyBg = device.createBindGroup({ layout: tinyPipe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: small } }] });
    const passOf = (n: number) => (enc: GPUCommandEncoder) => {
      const pass = enc.beginComputePass();
      pass.setPipeline(tinyPipe);
      for (let i = 0; i < n; i++) {
        pass.setBindGroup(0, tinyBg);
        pass.dispatchWorkgroups(1);
      }
      pass.end();
    };
    const N = 256;
    await timed(host, staging, small, passOf(N));
    const disp: number[] = [];
    for (let i = 0; i < R; i++) {
      const one = await timed(host, staging, small, passOf(1));
      const many = await timed(host, staging, small, passOf(N + 1));
      disp.push(Math.max(1e-9, (many - one) / N));
    }
    const dispatch = measured(disp);
    step('dispatch');

    // Copy bandwidth.
    const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    const bytes = Math.floor(Math.min(opts.copyBytes ?? 64 * 2 ** 20, limit) / 256) * 256;
    const src = buf(bytes);
    const dst = buf(bytes);
    const copyPipe = await pipeline(device, await compile(device, COPY_WGSL, 'copy'), 'copy');
    const copyBg = device.createBindGroup({
      layout: copyPipe.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }],
    });
    const copyGroups = Math.min(device.limits.maxComputeWorkgroupsPerDimension, Math.ceil(bytes / 16 / 64 / 4));
    const copies = (reps: number) =>
      timed(host, staging, small, (enc) => {
        const pass = enc.beginComputePass();
        pass.setPipeline(copyPipe);
        pass.setBindGroup(0, copyBg);
        for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(copyGroups);
        pass.end();
      });
    // Enough copies in one submit to take ten round trips: on an H200 one 64 MiB copy (about
    // 45 us) is shorter than a submit's round trip (about 60 us) and its noise.
    const once = await copies(1);
    const reps = Math.min(64, Math.max(1, Math.ceil((10 * roundTrip.median) / Math.max(once - roundTrip.median, roundTrip.median / 10))));
    await copies(reps);
    const cp: number[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(R / 2)); i++) {
      const s = await copies(reps);
      cp.push((2 * bytes * reps) / Math.max(1e-9, s - roundTrip.median));
    }
    const copy = measured(cp);
    step('copy bandwidth');
    if (copyOnly) return copy;

    // Grid barrier: the engine's discovery + barrier over the fused workgroup count.
    const barModule = await compile(device, barrierWgsl(layout), 'barrier');
    const barPipe = await pipeline(device, barModule, 'barriers');
    const emptyPipe = await pipeline(device, barModule, 'empty');
    const stepBuf = buf(256, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const dispBuf = buf(256, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    device.queue.writeBuffer(dispBuf, 0, new Uint32Array([0, 0]));
    const ctl = buf(Math.ceil((layout.sizes.ctl * 4) / 16) * 16);
    const barBg = device.createBindGroup({
      layout: barPipe.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: stepBuf, size: 48 } },
        { binding: 1, resource: { buffer: dispBuf, size: 8 } },
        { binding: BINDING.ctl, resource: { buffer: ctl } },
      ],
    });
    const emptyBg = device.createBindGroup({
      layout: emptyPipe.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: stepBuf, size: 48 } }, { binding: BINDING.ctl, resource: { buffer: ctl } }],
    });
    const groups = Math.max(1, t.fusedGroups);
    const spinBound = t.cpu ? 1 << 24 : 1 << 22;
    // The executor's occupancy probe budget: long enough for every co-resident workgroup to join,
    // so the figure is the cost of a barrier among `groups` workgroups (the executor's steps poll
    // for less and may run with fewer; barrierParticipants reports how many joined here).
    const pollSpins = opts.pollSpins ?? (t.cpu ? 1 << 20 : 1 << 14);
    const slot = layout.consts.C_SLOTS; // disp.slot = 0
    // Discovery is timed with the poll budget of the executor's real steps.
    const stepPollSpins = t.cpu ? 1 << 14 : 1 << 12;
    const barOnce = async (pipe: GPUComputePipeline, bg: GPUBindGroup, barriers: number, poll = pollSpins): Promise<{ s: number; aborted: boolean; count: number }> => {
      const u = new Uint32Array(12);
      u[1] = barriers;
      u[7] = spinBound;
      u[8] = poll;
      u[9] = groups;
      device.queue.writeBuffer(stepBuf, 0, u);
      const r = await timedRead(host, staging, ctl, (enc) => {
        enc.clearBuffer(ctl, 0, ctl.size);
        const pass = enc.beginComputePass();
        pass.setPipeline(pipe);
        pass.setBindGroup(0, bg);
        pass.dispatchWorkgroups(groups);
        pass.end();
      });
      return { s: r.s, aborted: r.words[layout.consts.C_ABORT] !== 0, count: r.words[slot + 1] ?? 0 };
    };
    const B = t.cpu ? 400 : 2000;
    const first = await barOnce(barPipe, barBg, B);
    if (first.aborted) {
      throw new KloopError(`grid barrier microbenchmark: ${groups} workgroups were not co-resident on this adapter (barrier timed out)`);
    }
    await barOnce(emptyPipe, emptyBg, 1);
    const bar: number[] = [];
    const disc: number[] = [];
    const counts: number[] = [];
    const stepCounts: number[] = [];
    for (let i = 0; i < R; i++) {
      const empty = (await barOnce(emptyPipe, emptyBg, 1)).s;
      const base = await barOnce(barPipe, barBg, 0);
      const zero = await barOnce(barPipe, barBg, 0, stepPollSpins);
      const many = await barOnce(barPipe, barBg, B);
      if (many.aborted) throw new KloopError(`grid barrier microbenchmark: a barrier timed out over ${groups} workgroups`);
      counts.push(many.count);
      stepCounts.push(Math.max(1, zero.count));
      bar.push(Math.max(1e-9, (many.s - base.s) / B));
      disc.push(Math.max(1e-9, zero.s - empty));
    }
    step('grid barrier');

    // Matvec: the engine's gate_up stage over the model's stacked FFN weights, once with the
    // per-op dispatch width (one workgroup per row tile) and once with the workgroups a fused
    // dispatch actually runs with (those that join within the executor's step poll budget).
    const k2 = layout.consts;
    // Activations are plain f32 where none crosses workgroups inside a dispatch (per-op kernels,
    // single-workgroup fused kernels) and atomics otherwise, as the executor composes them.
    // The weights bound as the executor binds them (storage buffers or textures, zero-filled).
    const store = createWeightStore(device, layout, 'microbenchmark', 'this adapter');
    created.push(store);
    const act = buf(Math.ceil((layout.sizes.act * 4) / 16) * 16);
    const items = Math.min(matvecItems(k2.HIDDEN, matvecLanes(layout.kernel, k2.HIDDEN, k2.DIM), layout.kernel.wg), device.limits.maxComputeWorkgroupsPerDimension, t.cpu ? cpuPerOpGroups() : Infinity);
    const fusedWidth = Math.max(1, Math.min(items, Math.round(median(stepCounts))));
    const fusedHandoff: Handoff = fusedWidth === 1 ? 'plain' : 'atomic';
    const mvPipes = new Map<Handoff, { pipe: GPUComputePipeline; bg: GPUBindGroup }>();
    const mvPipe = async (h: Handoff) => {
      let e = mvPipes.get(h);
      if (!e) {
        const pipe = await pipeline(device, await compile(device, matvecWgsl(layout, h), 'matvec'), 'stream');
        const bg = device.createBindGroup({
          layout: pipe.getBindGroupLayout(0),
          entries: [
            ...store.bindEntries.filter((e) => e.binding === BINDING.ffn1 || e.binding === BINDING.ffn3),
            { binding: BINDING.act, resource: { buffer: act } },
          ],
        });
        mvPipes.set(h, (e = { pipe, bg }));
      }
      return e;
    };
    const mvBytes = 2 * k2.HIDDEN * k2.DIM * 4 * k2.NLAYERS;
    const mvRate = async (g: number, h: Handoff): Promise<Measured> => {
      const { pipe, bg } = await mvPipe(h);
      const mvOnce = () =>
        timed(host, staging, small, (enc) => {
          const pass = enc.beginComputePass();
          pass.setPipeline(pipe);
          pass.setBindGroup(0, bg);
          pass.dispatchWorkgroups(g);
          pass.end();
        });
      await mvOnce();
      const mv: number[] = [];
      for (let i = 0; i < R; i++) {
        const s = await mvOnce();
        mv.push(mvBytes / Math.max(1e-9, s - roundTrip.median - dispatch.median));
      }
      return measured(mv);
    };
    const matvec = await mvRate(items, 'plain');
    const fusedMatvec = fusedWidth === items && fusedHandoff === 'plain' ? matvec : await mvRate(fusedWidth, fusedHandoff);
    step('matvec bandwidth');

    const { stageSeconds, tokenStagesSeconds, tokenColdSeconds, perOpTokenSeconds, perLayerTokenSeconds } = await measureStages({
      device, wait: t.wait, layout, store, act, buf, staging, small, repeats: R, pos: opts.pos ?? 0, fusedWidth, fusedHandoff, cpu: t.cpu,
    });
    step('stages');

    return {
      dispatchSeconds: dispatch,
      roundTripSeconds: roundTrip,
      copyBytesPerSecond: copy,
      matvecBytesPerSecond: matvec,
      fusedMatvecBytesPerSecond: fusedMatvec,
      barrierSeconds: measured(bar),
      discoverSeconds: measured(disc),
      stageSeconds,
      tokenStagesSeconds,
      tokenColdSeconds,
      perOpTokenSeconds,
      ...(perLayerTokenSeconds ? { perLayerTokenSeconds } : {}),
      barrierGroups: groups,
      barrierParticipants: measured(counts),
      stepParticipants: measured(stepCounts),
    };
  } finally {
    for (const b of created) b.destroy();
  }
}
