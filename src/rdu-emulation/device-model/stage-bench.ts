/**
 * The device model's stage microbenchmarks (microbench.ts runs them): every engine stage body
 * timed alone at the per-op width (one-call dispatches) and inside a running dispatch at the
 * fused width; a whole token's stages in schedule order, running and in a dispatch of its own;
 * and a token's per-op and per-layer dispatches in order, each on its own layer's weights.
 */
import { BINDING, type Handoff } from '../../kernels-wgsl/common.wgsl.ts';
import { compileWgsl, computePipeline } from '../../engine/compile.ts';
import { stageItems } from '../../engine/compose.ts';
import { cpuPerOpGroups } from '../../engine/device.ts';
import { kernelSchedules } from '../../engine/program.ts';
import { STAGES, type Schedule, type StageId } from '../../engine/schedule.ts';
import type { Layout } from '../../engine/layout.ts';
import type { WeightStore } from '../../engine/weight-store.ts';
import { stagesWgsl } from './kernels.ts';
import { type Measured, measured, timed } from './measure.ts';
import type { Waiter } from '../../engine/host-wait.ts';

export interface StageBenchTarget {
  device: GPUDevice;
  layout: Layout;
  /** The weights bound as the executor binds them. */
  store: WeightStore;
  /** The activation buffer. */
  act: GPUBuffer;
  /** Creates a buffer the caller destroys. */
  buf: (size: number, usage?: number) => GPUBuffer;
  /** Readback buffers of the timed submits. */
  staging: GPUBuffer;
  small: GPUBuffer;
  repeats: number;
  /** Position the attention stage is timed at. */
  pos: number;
  fusedWidth: number;
  fusedHandoff: Handoff;
  cpu: boolean;
  /** How the host waits for readbacks (the executor's waiter). */
  wait?: Waiter;
}

export interface StageMeasurements {
  stageSeconds: Record<StageId, { perOp: Measured; fused: Measured }>;
  tokenStagesSeconds: Measured;
  tokenColdSeconds: Measured;
  perOpTokenSeconds: Measured;
  /** Absent with one fused workgroup: per-layer's work is then the cold token (see below). */
  perLayerTokenSeconds?: Measured;
}

/** The layers a schedule call runs its stages on (layer 0 for the prologue and epilogue). */
const callLayers = (c: Schedule['calls'][number]): readonly number[] => (c.kind === 'loop' ? c.layers : c.kind === 'layer' ? [c.layer] : [0]);

const compile = (device: GPUDevice, code: string, label: string) => compileWgsl(device, code, `microbenchmark ${label}`);

export async function measureStages(t: StageBenchTarget): Promise<StageMeasurements> {
  const { device, layout, store, act, buf, staging, small, fusedWidth, fusedHandoff } = t;
  const R = t.repeats;
  // The per-op and per-layer schedule: its layer calls are the decoder layer's stages.
  const schedules = kernelSchedules(layout.config);
  const scheduleCalls = schedules.schedule.calls;
  const layerStages = scheduleCalls.find((c) => c.kind === 'layer')?.stages;
  // Stages: each body R times in one dispatch, (T(1 + R) - T(1)) / R, with R sized for ~30 ms.
  const stModules = new Map<Handoff, GPUShaderModule>();
  const stModule = async (h: Handoff): Promise<GPUShaderModule> => {
    let m = stModules.get(h);
    if (!m) stModules.set(h, (m = await compile(device, stagesWgsl(layout, h, schedules.looped, layerStages), 'stages')));
    return m;
  };
  const rw = { type: 'storage' as const };
  const stBgl = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
      { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } },
      ...store.layoutEntries,
      ...[BINDING.kv, BINDING.act, BINDING.ctl].map((binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: rw })),
    ],
  });
  const stLayout = device.createPipelineLayout({ bindGroupLayouts: [stBgl] });
  const sz = layout.sizes;
  const fbuf = (floats: number) => buf(Math.max(256, Math.ceil((floats * 4) / 16) * 16));
  const stStep = buf(256, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  // One Dispatch record per layer (256 bytes apart, dynamic offsets): the first layer a stage entry addresses.
  const nl = layout.config.nLayers;
  const stDisp = buf(256 * nl, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  for (let l = 0; l < nl; l++) device.queue.writeBuffer(stDisp, 256 * l, new Uint32Array([l, 0]));
  const stBg = device.createBindGroup({
    layout: stBgl,
    entries: [
      { binding: 0, resource: { buffer: stStep, size: 48 } },
      { binding: 1, resource: { buffer: stDisp, size: 16 } },
      ...store.bindEntries,
      ...([[BINDING.kv, fbuf(sz.kv)], [BINDING.act, act], [BINDING.ctl, fbuf(sz.ctl)]] as const).map(([binding, b]) => ({ binding, resource: { buffer: b } })),
    ],
  });
  const pos = Math.max(0, Math.min(layout.context - 1, Math.round(t.pos)));
  // One timed pass of `encode`'s dispatches, each stage entry calling its body `reps` times.
  const timedPass = (reps: number, encode: (pass: GPUComputePassEncoder) => void) => {
    const u = new Uint32Array(12);
    u[0] = pos;
    u[1] = reps;
    device.queue.writeBuffer(stStep, 0, u);
    return timed({ device, wait: t.wait }, staging, small, (enc) => {
      const pass = enc.beginComputePass();
      encode(pass);
      pass.end();
    });
  };
  const stOnce = (p: GPUComputePipeline, g: number, reps: number, dispatches = 1) =>
    timedPass(reps, (pass) => {
      pass.setPipeline(p);
      for (let i = 0; i < dispatches; i++) {
        pass.setBindGroup(0, stBg, [0]);
        pass.dispatchWorkgroups(g);
      }
    });
  // Fused width: the body R times inside one dispatch (workgroups stay resident, as in a
  // fused kernel). Per-op width: R dispatches of one call each (every call pays the
  // workgroups' start, as a per-op dispatch does), launch included: the model takes off the
  // launch cost it adds back (stageKernelSeconds), so that a per-op token costs the sum of its
  // measured dispatches whatever the launch figure.
  const perCall = async (p: GPUComputePipeline, g: number, asDispatches: boolean, count = 3): Promise<Measured> => {
    const run = (n: number) => (asDispatches ? stOnce(p, g, 1, n) : stOnce(p, g, n));
    await run(2);
    const est = Math.max(1e-7, ((await run(5)) - (await run(1))) / 4);
    const reps = Math.max(2, Math.min(asDispatches ? 100 : 200, Math.round(0.03 / est)));
    const xs: number[] = [];
    for (let i = 0; i < count; i++) {
      const one = await run(1);
      const many = await run(1 + reps);
      xs.push(Math.max(1e-9, (many - one) / reps));
    }
    return measured(xs);
  };
  const stageSeconds = {} as Record<StageId, { perOp: Measured; fused: Measured }>;
  // Per-op widths as the executor dispatches them (capped on CPU adapters).
  const maxG = Math.min(device.limits.maxComputeWorkgroupsPerDimension, t.cpu ? cpuPerOpGroups() : Infinity);
  const pipe = async (id: StageId | 'token' | 'layer', h: Handoff): Promise<GPUComputePipeline> =>
    computePipeline(device, stLayout, await stModule(h), `stage_${id}`);
  const opPipes = new Map<StageId, { p: GPUComputePipeline; g: number }>();
  const fusedPipes = new Map<StageId, GPUComputePipeline>();
  for (const id of Object.keys(STAGES) as StageId[]) {
    const opWidth = Math.min(stageItems(id, layout), maxG);
    const fusedW = Math.min(opWidth, fusedWidth);
    const op = { p: await pipe(id, 'plain'), g: opWidth };
    opPipes.set(id, op);
    const perOp = await perCall(op.p, op.g, true);
    const fusedPipe = await pipe(id, fusedHandoff);
    fusedPipes.set(id, fusedPipe);
    stageSeconds[id] = { perOp, fused: await perCall(fusedPipe, fusedW, false) };
  }
  const tokenPipe = await pipe('token', fusedHandoff);
  // The whole-token figures carry the model's kernel terms: more samples than a stage's (on a
  // 2-core host a run of 7 could sit in one slow phase of the machine and read 1.4x slow).
  const tokenSamples = Math.max(R, 11);
  const tokenStagesSeconds = await perCall(tokenPipe, fusedWidth, false, tokenSamples);
  // One run against none in the same dispatches: the work they add, launches excluded. A
  // difference of two submits that each mostly launch (per-op: about 0.5 ms of work in 3 ms),
  // so many cheap pairs: with 11, per-op's figure ranged 0.02-0.65 ms over runs of one build.
  const pairs = Math.max(R, 31);
  const added = async (encode: (pass: GPUComputePassEncoder) => void): Promise<Measured> => {
    const run = (reps: number) => timedPass(reps, encode);
    await run(1);
    const xs: number[] = [];
    for (let i = 0; i < pairs; i++) {
      const zero = await run(0);
      xs.push(Math.max(1e-9, (await run(1)) - zero));
    }
    return measured(xs);
  };
  const tokenColdSeconds = await added((pass) => {
    pass.setPipeline(tokenPipe);
    pass.setBindGroup(0, stBg, [0]);
    pass.dispatchWorkgroups(fusedWidth);
  });
  // The per-op token: every call of the per-op schedule, each on its own layer's weights.
  const calls = scheduleCalls.flatMap((c) => callLayers(c).flatMap((l) => c.stages.map((id) => ({ id, l }))));
  const perOpTokenSeconds = await added((pass) => {
    for (const { id, l } of calls) {
      const { p, g } = opPipes.get(id)!;
      pass.setPipeline(p);
      pass.setBindGroup(0, stBg, [256 * l]);
      pass.dispatchWorkgroups(g);
    }
  });
  // The per-layer token: a dispatch per call of the same schedule at the fused width (a decoder
  // layer's stages in one, on its layer; the others' stages one dispatch each). With ONE
  // workgroup (CPU adapters) the per-layer kernels neither discover nor meet at barriers: their
  // dispatches run the cold token's bodies one after the other, each launch counted by the
  // dispatch term, so the cold token is per-layer's work, measured as a difference of one-dispatch
  // submits. The difference of per-layer's eight-dispatch submits carries eight launches' jitter
  // (lavapipe, stories260K: 0.18-0.47 ms over runs of one build where the cold token read
  // 0.19-0.29 and per-layer's decode moved by 1.3x at most); it is measured where the widths differ.
  if (fusedWidth <= 1) return { stageSeconds, tokenStagesSeconds, tokenColdSeconds, perOpTokenSeconds };
  const layerPipe = await pipe('layer', fusedHandoff);
  const perLayerTokenSeconds = await added((pass) => {
    for (const c of scheduleCalls) {
      const runs = c.kind === 'layer' || c.kind === 'loop' ? callLayers(c).map((l) => ({ p: layerPipe, l })) : c.stages.map((id) => ({ p: fusedPipes.get(id)!, l: 0 }));
      for (const { p, l } of runs) {
        pass.setPipeline(p);
        pass.setBindGroup(0, stBg, [256 * l]);
        pass.dispatchWorkgroups(fusedWidth);
      }
    }
  });
  return { stageSeconds, tokenStagesSeconds, tokenColdSeconds, perOpTokenSeconds, perLayerTokenSeconds };
}
