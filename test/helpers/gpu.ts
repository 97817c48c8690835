/** One WebGPU device per test worker, and small comparison helpers shared by the GPU tests. */
import { type AcquiredDevice, acquireDevice } from '../../src/engine/device.ts';

let device: Promise<AcquiredDevice> | undefined;

/** The adapter the tests run on: $KLOOP_TEST_ADAPTER, else the engine's own pick (lavapipe here). */
export function testDevice(): Promise<AcquiredDevice> {
  device ??= acquireDevice(process.env.KLOOP_TEST_ADAPTER, () => {});
  return device;
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
