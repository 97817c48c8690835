/** Timing helpers of the device-model microbenchmarks: a figure with its spread, and a timed submit. */
import { median } from '../../engine/counts.ts';
import { type Waiter, passThrough } from '../../engine/host-wait.ts';

/** The device a timed submit goes to, and how the host waits for it (the executor's waiter). */
export interface TimedDevice {
  device: GPUDevice;
  wait?: Waiter;
}

/** A measured figure: the median and the spread of its runs. */
export interface Measured {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function measured(xs: number[]): Measured {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs.length };
}

const now = (): number => performance.now() / 1000;

/** Submits `encode`'s commands and waits for completion through a mapped readback, as the executor does. */
export async function timedRead(
  { device, wait = passThrough }: TimedDevice, staging: GPUBuffer, src: GPUBuffer, encode: (enc: GPUCommandEncoder) => void,
): Promise<{ s: number; words: Uint32Array }> {
  const size = Math.min(src.size, staging.size);
  const t0 = now();
  const enc = device.createCommandEncoder();
  encode(enc);
  enc.copyBufferToBuffer(src, 0, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await wait(staging.mapAsync(GPUMapMode.READ));
  const words = new Uint32Array(staging.getMappedRange(0, size).slice(0));
  staging.unmap();
  return { s: now() - t0, words };
}

export async function timed(d: TimedDevice, staging: GPUBuffer, src: GPUBuffer, encode: (enc: GPUCommandEncoder) => void): Promise<number> {
  return (await timedRead(d, staging, src, encode)).s;
}
