/** One WebGPU device per test worker, and small comparison helpers shared by the GPU tests. */
import { expect } from 'vitest';
import { type AcquiredDevice, acquireDevice } from '../../src/engine/device.ts';
import { type Executor, type Mode, createExecutor } from '../../src/engine/executor.ts';
import type { GpuOptions } from '../../src/engine/gpu-executor.ts';
import type { LoadedModel } from '../../src/loader/types.ts';
import { KloopError } from '../../src/errors.ts';

let device: Promise<AcquiredDevice> | undefined;

/** The adapter the tests run on: $KLOOP_TEST_ADAPTER, else the engine's own pick (lavapipe here). */
export function testDevice(): Promise<AcquiredDevice> {
  device ??= acquireDevice(process.env.KLOOP_TEST_ADAPTER, () => {});
  return device;
}

/**
 * Whether `e` says this machine has no WebGPU at all (engine/device.ts): no adapter (no Vulkan
 * driver, no SwiftShader), or a 'webgpu' package that does not load here. A missing
 * prerequisite, where any other error in setting up a device is a failure.
 */
export function isNoWebGpu(e: unknown): e is KloopError {
  return e instanceof KloopError && /^WebGPU: (no adapter found|cannot load the 'webgpu' package)/.test(e.message);
}

/**
 * The test device, or undefined with the reason printed when this machine has no WebGPU
 * (isNoWebGpu), for `what` to be skipped; any other failure to open it is thrown.
 */
export async function testDeviceOrSkip(what: string): Promise<AcquiredDevice | undefined> {
  try {
    return await testDevice();
  } catch (e) {
    if (!isNoWebGpu(e)) throw e;
    console.log(`SKIPPED ${what}: ${e.message}`);
    return undefined;
  }
}

/** Relative error of one logits row: ||a - ref|| / ||ref||. */
export function relError(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < ref.length; i++) {
    d += (a[i] - ref[i]) ** 2;
    n += ref[i] ** 2;
  }
  return Math.sqrt(d / n);
}

export function argmaxOf(a: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i;
  return b;
}

/**
 * Teacher-forces `steps` tokens through `mode` (activations poisoned with NaN before every step)
 * and the CPU reference: every logits row finite, within 1e-4 relative error, the same top-1.
 * The executor is pushed onto `keep` so the caller destroys it.
 */
export async function compareWithReference(model: LoadedModel, mode: Mode, opts: Omit<GpuOptions, 'mode'>, steps: number, keep: Executor[]): Promise<void> {
  const ref = await createExecutor(model, 'reference', testDevice);
  const ex = await createExecutor(model, mode, testDevice, { ...opts, poison: true });
  keep.push(ex);
  const tokens = Array.from({ length: steps }, (_, i) => (i * 37 + 11) % model.config.vocabSize);
  for (let p = 0; p < steps; p++) {
    const want = await ref.forward(tokens[p], p);
    const got = await ex.forward(tokens[p], p);
    expect(got.every(Number.isFinite), `position ${p}: unwritten logits`).toBe(true);
    expect(relError(got, want), `position ${p}`).toBeLessThan(1e-4);
    expect(argmaxOf(got)).toBe(argmaxOf(want));
  }
}

/**
 * Runs `tokens` from position 0 through `ex`'s batched forward (every logits row asked for) and
 * step by step through the CPU reference: every row within 1e-4 relative error, the same top-1.
 */
export async function compareBatchedWithReference(model: LoadedModel, ex: Executor, tokens: number[]): Promise<void> {
  const ref = await createExecutor(model, 'reference', testDevice);
  const rows = await ex.forwardMany!(tokens, 0, 'all');
  for (let p = 0; p < tokens.length; p++) {
    const want = await ref.forward(tokens[p]!, p);
    expect(relError(rows[p]!, want), `position ${p}`).toBeLessThan(1e-4);
    expect(argmaxOf(rows[p]!)).toBe(argmaxOf(want));
  }
}

type Dispatch = (this: GPUComputePassEncoder, ...args: unknown[]) => void;

/**
 * Runs `f` with every compute pass's dispatchWorkgroups replaced by `replace(real)` (count them,
 * drop them), and puts the real one back after.
 */
export async function withDispatches<T>(replace: (real: Dispatch) => Dispatch, f: () => Promise<T>): Promise<T> {
  const proto = (globalThis as unknown as { GPUComputePassEncoder: { prototype: { dispatchWorkgroups: Dispatch } } }).GPUComputePassEncoder.prototype;
  const real = proto.dispatchWorkgroups;
  proto.dispatchWorkgroups = replace(real);
  try {
    return await f();
  } finally {
    proto.dispatchWorkgroups = real;
  }
}
