/**
 * The host's waiter (engine/host-wait.ts): it resolves and rejects as the promise it waits on,
 * and while that promise is pending it throttles the event loop to about one turn per sleep
 * (Dawn's Node binding polls the device once per turn), after its spinning time; the device
 * acquired in Node carries one, and long runs of readbacks through it complete.
 */
import { describe, expect, it, vi } from 'vitest';
import { canBlock, hostWaiter, passThrough, waitPolicy } from '../../src/engine/host-wait.ts';
import { testDevice } from '../helpers/gpu.ts';

const later = <T>(ms: number, v: T): Promise<T> => new Promise((r) => setTimeout(() => r(v), ms));

/** `n` turns of the event loop: one setImmediate each, the next queued from the last. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** A promise and the function that resolves it. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Watches the waiter's two contacts with the host: the clock it reads (performance.now, set by
 * the test) and the sleeps it takes (Atomics.wait, run for real; each of its answers recorded,
 * 'timed-out' when it slept the whole time asked). The waiter's own sleeps are told apart from
 * any other Atomics.wait by their length, `sleepMs`.
 */
function watchHost(sleepMs: number) {
  let now = 100;
  const clock = vi.spyOn(performance, 'now').mockImplementation(() => now);
  const realWait = Atomics.wait;
  const sleeps: string[] = [];
  const sleep = vi.spyOn(Atomics, 'wait').mockImplementation((...args: Parameters<typeof Atomics.wait>) => {
    const r = realWait.apply(Atomics, args);
    if (args[3] === sleepMs) sleeps.push(r);
    return r;
  });
  return {
    sleeps,
    setNow: (ms: number) => void (now = ms),
    restore: () => {
      clock.mockRestore();
      sleep.mockRestore();
    },
  };
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

  it('throttles the event loop: each turn while a wait is pending sleeps once, the whole sleep; none once it settled', async () => {
    const host = watchHost(1.5);
    try {
      const d = deferred<string>();
      const waiting = hostWaiter({ sleepUs: 1500, spinUs: 0 })(d.promise);
      // Its turn and each of these take turns in the event loop: 20 turns, 20 sleeps (one more or
      // less at the ends), each blocking the thread for all its 1.5 ms.
      await turns(20);
      expect(host.sleeps.length).toBeGreaterThanOrEqual(19);
      expect(host.sleeps.length).toBeLessThanOrEqual(21);
      expect(host.sleeps.every((r) => r === 'timed-out'), host.sleeps.join(' ')).toBe(true);
      d.resolve('done');
      expect(await waiting).toBe('done');
      const slept = host.sleeps.length;
      await turns(10);
      expect(host.sleeps.length).toBe(slept);
    } finally {
      host.restore();
    }
  });

  it('spins at full speed for its spinning time before it sleeps', async () => {
    const host = watchHost(1.5);
    try {
      const d = deferred<string>();
      const waiting = hostWaiter({ sleepUs: 1500, spinUs: 10_000 })(d.promise);
      await turns(20);
      host.setNow(109.9); // 9.9 ms of its 10 ms
      await turns(20);
      expect(host.sleeps).toEqual([]);
      host.setNow(110);
      await turns(20);
      expect(host.sleeps.length).toBeGreaterThanOrEqual(19);
      expect(host.sleeps.length).toBeLessThanOrEqual(21);
      expect(host.sleeps.every((r) => r === 'timed-out')).toBe(true);
      d.resolve('done');
      expect(await waiting).toBe('done');
    } finally {
      host.restore();
    }
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
