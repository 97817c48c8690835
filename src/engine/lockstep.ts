/**
 * Whether a CPU adapter runs a workgroup of W invocations in lockstep (one SIMD row): measured
 * once per device with the probe of kernels-wgsl/lockstep.wgsl.ts, which must reproduce its
 * expected output exactly in two runs. Such adapters get the lockstep kernel form (no barriers,
 * workgroups of W). Anything else, an error included, means "not in lockstep".
 */
import { lockstepProbeExpected, lockstepProbeWgsl } from '../kernels-wgsl/lockstep.wgsl.ts';

/**
 * Workgroup size tried: llvmpipe's row with 256-bit vectors (AVX). llvmpipe also passes the probe
 * at 16 (and fails at 32), but 16-invocation workgroups measured no faster (bench/RESULTS.md,
 * 2026-11-30), so 16 is not tried. SwiftShader's 4-lane rows pass the probe at 4, but there the
 * barrier-free form measured no faster (stories260K, 2026-11-30), so 4 is not tried either.
 */
export const LOCKSTEP_WIDTHS = [8] as const;
const GROUPS = 64;

/** Whether the device runs workgroups of `width` in lockstep (the probe, twice, exact). */
export async function runsInLockstep(device: GPUDevice, width: number): Promise<boolean> {
  const words = GROUPS * 3 * width;
  const out = device.createBuffer({ size: words * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const read = device.createBuffer({ size: words * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    // The scope is popped whatever happens, so that a failed probe leaves none behind.
    device.pushErrorScope('validation');
    const built = await device
      .createComputePipelineAsync({ layout: 'auto', compute: { module: device.createShaderModule({ code: lockstepProbeWgsl(width) }), entryPoint: 'probe' } })
      .then((pipeline) => ({ pipeline, bind: device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] }) }))
      .catch(() => undefined);
    if ((await device.popErrorScope()) || !built) return false;
    const { pipeline, bind } = built;
    const want = lockstepProbeExpected(width, GROUPS);
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
