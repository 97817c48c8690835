/**
 * The host's waiter (engine/host-wait.ts): it resolves and rejects as the promise it waits on,
 * and while that promise is pending it throttles the event loop to about one turn per sleep
 * (Dawn's Node binding polls the device once per turn), after its spinning time; the device
 * acquired in Node carries one, and long runs of readbacks through it complete.
 */
import { describe, expect, it } from 'vitest';
import { type Waiter, canBlock, hostWaiter, passThrough, waitPolicy } from '../../src/engine/host-wait.ts';
import { testDevice } from '../helpers/gpu.ts';

const later = <T>(ms: number, v: T): Promise<T> => new Promise((r) => setTimeout(() => r(v), ms));

/** Event-loop turns a competing setImmediate loop gets while `wait` waits `ms` for a timer. */
async function turnsDuring(wait: Waiter, ms: number): Promise<{ turns: number; value: string }> {
  let turns = 0;
  let running = true;
  const spin = (): void => {
    if (!running) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const value = await wait(later(ms, 'done'));
  running = false;
  return { turns, value };
}

describe('host waiter', () => {
  it('Node may block its main thread; a policy that does not sleep, or a thread that cannot block, passes the promise through', () => {
    expect(canBlock()).toBe(true);
    expect(hostWaiter({ sleepUs: 0, spinUs: 0 })).toBe(passThrough);
    expect(hostWaiter({ sleepUs: 20, spinUs: 0 }, false)).toBe(passThrough);
    expect(hostWaiter({ sleepUs: 20, spinUs: 0 })).not.toBe(passThrough);
    expect(waitPolicy(true)).toEqual({ sleepUs: 20, spinUs: 0 });
    expect(waitPolicy(false).spinUs).toBeGreaterThan(0);
  });

  it('resolves with the value and rejects with the error of the promise it waits on', async () => {
    const w = hostWaiter({ sleepUs: 50, spinUs: 0 });
    await expect(w(later(5, 42))).resolves.toBe(42);
    await expect(w(Promise.reject(new Error('device lost')))).rejects.toThrow('device lost');
    const [a, b] = await Promise.all([w(later(8, 'a')), w(later(3, 'b'))]);
    expect([a, b]).toEqual(['a', 'b']);
  });

  it('throttles the event loop to about one turn per sleep while a wait is pending', async () => {
    const free = await turnsDuring(passThrough, 40);
    const slept = await turnsDuring(hostWaiter({ sleepUs: 2000, spinUs: 0 }), 40);
    expect(slept.value).toBe('done');
    // 40 ms at 2 ms a turn: about 20 turns (a few more around the timer); unthrottled, thousands.
    expect(slept.turns).toBeLessThan(40);
    expect(free.turns).toBeGreaterThan(10 * slept.turns);
  });

  it('spins at full speed for its spinning time before it sleeps', async () => {
    const spun = await turnsDuring(hostWaiter({ sleepUs: 2000, spinUs: 1e6 }), 40);
    const slept = await turnsDuring(hostWaiter({ sleepUs: 2000, spinUs: 0 }), 40);
    expect(spun.turns).toBeGreaterThan(10 * slept.turns);
  });

  it('the device acquired in Node waits with a sleeping waiter', async () => {
    const gpu = await testDevice();
    expect(gpu.wait).not.toBe(passThrough);
    // A readback through it completes.
    const buf = gpu.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    gpu.device.queue.writeBuffer(buf, 0, new Uint32Array([7, 8, 9, 10]));
    await gpu.wait(buf.mapAsync(GPUMapMode.READ));
    expect([...new Uint32Array(buf.getMappedRange())]).toEqual([7, 8, 9, 10]);
    buf.unmap();
    buf.destroy();
  });

  it('15,000 readbacks in a row through the device waiter each see their own submit', async () => {
    const gpu = await testDevice();
    const { device } = gpu;
    const small = device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const staging = device.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    let wrong = 0;
    for (let i = 0; i < 15_000; i++) {
      device.queue.writeBuffer(small, 0, new Uint32Array([i, ~i]));
      const enc = device.createCommandEncoder();
      enc.copyBufferToBuffer(small, 0, staging, 0, 16);
      device.queue.submit([enc.finish()]);
      await gpu.wait(staging.mapAsync(GPUMapMode.READ));
      const got = new Uint32Array(staging.getMappedRange(0, 16));
      if (got[0] !== i || got[1] !== (~i >>> 0)) wrong++;
      staging.unmap();
    }
    expect(wrong).toBe(0);
    small.destroy();
    staging.destroy();
  }, 120_000);
});
