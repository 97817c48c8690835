/**
 * The GPU form's widths: the workgroup size per model width (kernelWg) and the lanes per matvec
 * row (matvecLanes), which widen where a matvec would leave a large GPU's multiprocessors idle.
 * Their kernels are checked against the CPU reference in subgroup.test.ts and kernels.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { type AcquiredDevice, GPU_WORKGROUP_SIZE, kernelWg } from '../../src/engine/device.ts';
import { MATVEC_ITEMS, matvecItems, matvecLanes } from '../../src/kernels-wgsl/matvec.wgsl.ts';

const fake = (cpu: boolean, limit: number) =>
  ({ cpu, name: cpu ? 'llvmpipe' : 'gpu', lockstepWidth: 0, device: { limits: { maxComputeInvocationsPerWorkgroup: limit } } }) as unknown as AcquiredDevice;

describe('kernelWg', () => {
  it('GPUs: 1024 invocations for wide models, 256 for narrow ones, within the limit', () => {
    expect(kernelWg(fake(false, 1024), {}, 2048)).toBe(GPU_WORKGROUP_SIZE);
    expect(kernelWg(fake(false, 1024), {}, 64)).toBe(256);
    expect(kernelWg(fake(false, 256), {}, 2048)).toBe(256);
    expect(kernelWg(fake(false, 1024), { wg: 512 }, 2048)).toBe(512);
  });
  it('CPU adapters keep their own size whatever the model', () => {
    expect(kernelWg(fake(true, 1024), {}, 2048)).toBe(16);
  });
});

describe('matvecLanes', () => {
  it('Llama-3.2-1B at 1024 invocations: the 2048-row matvecs widen to 64 lanes, the wide ones keep 32', () => {
    const k = { wg: 1024, lanes: 32 };
    expect(matvecLanes(k, 3072, 2048)).toBe(64); // qkv
    expect(matvecLanes(k, 2048, 2048)).toBe(64); // wo
    expect(matvecLanes(k, 2048, 8192)).toBe(64); // down
    expect(matvecLanes(k, 8192, 2048)).toBe(32); // gate_up
    expect(matvecLanes(k, 128256, 2048)).toBe(32); // classifier
    for (const [r, c] of [[3072, 2048], [2048, 8192]]) expect(matvecItems(r, matvecLanes(k, r, c), 1024)).toBeGreaterThanOrEqual(MATVEC_ITEMS);
  });
  it('a lane keeps at least one 32-value unit; one invocation per row stays one', () => {
    expect(matvecLanes({ wg: 256, lanes: 32 }, 64, 64)).toBe(32); // stories260K: no room to widen
    expect(matvecLanes({ wg: 256, lanes: 8 }, 1024, 1024)).toBe(32);
    expect(matvecLanes({ wg: 16, lanes: 1 }, 64, 4096)).toBe(1);
  });
});
