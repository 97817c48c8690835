/**
 * Whether a CPU adapter runs a workgroup of W invocations in lockstep (one SIMD row): measured
 * once per device with the probe of kernels-wgsl/lockstep.wgsl.ts, which must reproduce its
 * expected output exactly in two runs. Such adapters get the lockstep kernel form (no barriers,
 * workgroups of W). Anything else, an error included, means "not in lockstep".
 */
import { lockstepProbeExpected, lockstepProbeWgsl } from '../kernels-wgsl/lockstep.wgsl.ts';
import { SUBGROUP_WIDTHS, subgroupProbeExpected, subgroupProbeWgsl } from '../kernels-wgsl/subgroup.wgsl.ts';

/**
 * Workgroup sizes tried, in order: llvmpipe's row with 256-bit vectors (AVX), then SwiftShader's
 * 4-lane row (llvmpipe passes at 8 and stops there; SwiftShader fails at 8, two rows, and passes
 * at 4). llvmpipe also passes the probe at 16 (and fails at 32), but 16-invocation workgroups
 * measured no faster (bench/RESULTS.md, 2026-11-30), so 16 is not tried. On SwiftShader the
 * barrier-free form at 4 measured no faster than two rows of 8 while the host spun on its
 * readbacks; with the host asleep (host-wait.ts) it is: stories260K looped:16 1113-1120 against
 * 960-1006 tokens/s, per-layer 749-765 against 585-645; the stories15M shape within noise (f32,
 * q4_0) or 1.14x (q8_0).
 */
export const LOCKSTEP_WIDTHS = [8, 4] as const;
const GROUPS = 64;

/** Whether the device runs workgroups of `width` in lockstep (the probe, twice, exact). */
export function runsInLockstep(device: GPUDevice, width: number): Promise<boolean> {
  return probePasses(device, lockstepProbeWgsl(width), width, lockstepProbeExpected(width, GROUPS));
}

/**
 * Whether the device's subgroups are rows of `s` consecutive invocations of a `width` workgroup,
 * all active (the probe of kernels-wgsl/subgroup.wgsl.ts, twice, exact). False without the
 * 'subgroups' feature.
 */
export function runsSubgroupRows(device: GPUDevice, width: number, s: number): Promise<boolean> {
  if (!device.features.has('subgroups')) return Promise.resolve(false);
  return probePasses(device, subgroupProbeWgsl(width, s), width, subgroupProbeExpected(width, s, GROUPS));
}

/** Runs a probe shader (entry point `probe`, one storage buffer) twice over GROUPS workgroups; true if both runs write `want` exactly. */
async function probePasses(device: GPUDevice, code: string, width: number, want: Uint32Array): Promise<boolean> {
  const words = want.length;
  const out = device.createBuffer({ size: words * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const read = device.createBuffer({ size: words * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    if (width > device.limits.maxComputeInvocationsPerWorkgroup) return false;
    // The scope is popped whatever happens, so that a failed probe leaves none behind.
    device.pushErrorScope('validation');
    const built = await device
      .createComputePipelineAsync({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'probe' } })
      .then((pipeline) => ({ pipeline, bind: device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] }) }))
      .catch(() => undefined);
    if ((await device.popErrorScope()) || !built) return false;
    const { pipeline, bind } = built;
    for (let run = 0; run < 2; run++) {
      // Poisoned before each run: a value left from the last run cannot pass.
      device.queue.writeBuffer(out, 0, new Uint32Array(words).fill(0xdeadbeef));
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bind);
      pass.dispatchWorkgroups(GROUPS);
      pass.end();
      enc.copyBufferToBuffer(out, 0, read, 0, words * 4);
      device.queue.submit([enc.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const got = new Uint32Array(read.getMappedRange().slice(0));
      read.unmap();
      if (!got.every((v, i) => v === want[i])) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    out.destroy();
    read.destroy();
  }
}

/** The largest LOCKSTEP_WIDTHS entry the device runs in lockstep, or 0. */
export async function probeLockstep(device: GPUDevice): Promise<number> {
  for (const w of LOCKSTEP_WIDTHS) {
    if (w <= device.limits.maxComputeInvocationsPerWorkgroup && (await runsInLockstep(device, w))) return w;
  }
  return 0;
}

/**
 * The subgroup width S whose rows the kernels may use in workgroups of `width`
 * (kernels-wgsl/subgroup.wgsl.ts), or 0. Where the adapter reports its subgroup sizes, only a
 * fixed size is tried (min = max): with a range the compiler may pick another size for another
 * pipeline than the probe's. Where it does not, the widths of the input-sharing form
 * (SUBGROUP_WIDTHS), largest first. The width must divide `width` and pass the probe.
 */
export async function probeSubgroupRows(device: GPUDevice, width: number, sizes?: { min?: number; max?: number }): Promise<number> {
  const { min, max } = sizes ?? {};
  const reported = min !== undefined && max !== undefined;
  const candidates = reported && min > 0 && min === max ? [min] : reported && min !== max ? [] : [...SUBGROUP_WIDTHS].reverse();
  for (const s of candidates) {
    if (width % s === 0 && (await runsSubgroupRows(device, width, s))) return s;
  }
  return 0;
}
