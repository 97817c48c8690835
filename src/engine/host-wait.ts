/**
 * How the host waits for the device. In Node, Dawn resolves a pending mapAsync by polling the
 * device from a setImmediate loop: one turn of the event loop per poll, and each turn allocates
 * a callback. While a kernel runs, the main thread therefore spins at full speed and feeds the
 * garbage collector; on lavapipe (stories260K, 2 cores, 8 x 256 tokens a mode, about 4 s) that
 * meant 47 scavenges and 14 mark-compact collections, submits stalled 10-80 ms by them (17-25%
 * of the wall time), and a core taken from the adapter that runs the kernels on the same CPU.
 *
 * The waiter below takes part in the same event loop: while a wait is pending, each of its turns
 * sleeps `sleepUs` microseconds (Atomics.wait, which Node allows on its main thread), so Dawn
 * polls about once per sleep instead of continuously. The same run: 24 scavenges and one
 * mark-compact, the largest stall 7 ms; in the bench, looped:16 3817-4170 tokens/s against
 * 2527-3752 spinning, SwiftShader about 1.3x (bench/RESULTS.md). A completion is noticed at most about
 * one sleep late, and a sleep lasts longer than asked (a 20 us Atomics.wait took 0.1 ms at the
 * median on that 2-core VM, the kernel's timer slack included); on GPUs the sleeping starts only
 * after `spinUs` of waiting, so short submits keep the full-speed poll.
 *
 * Browsers resolve promises from their own event loop (no polling, and the main thread may not
 * block), so there the waiter passes the promise through.
 */

/** Sleeps per event-loop turn while a wait is pending. */
export interface WaitPolicy {
  /** Microseconds each turn sleeps; 0 leaves the wait alone. */
  sleepUs: number;
  /** Microseconds of a wait spent polling at full speed before the sleeping starts. */
  spinUs: number;
}

/** Resolves as `p` does; how the host spends the time in between is the waiter's. */
export type Waiter = <T>(p: Promise<T>) => Promise<T>;

/** A waiter that leaves the promise alone. */
export const passThrough: Waiter = (p) => p;

/**
 * The policy for an adapter: on CPU adapters, whose kernels run on the host's own cores, sleep
 * from the start; on GPUs after 5 ms (a sleep of about 0.1 ms is then at most 2% of the wait).
 * Measured on lavapipe, stories260K: sleeps of 20 us and 50 us both removed the long stalls;
 * 20 us cost the least.
 */
export function waitPolicy(cpu: boolean): WaitPolicy {
  return { sleepUs: 20, spinUs: cpu ? 0 : 5000 };
}

/** Whether this thread may block in Atomics.wait: Node's main thread and workers, not a browser page. */
export function canBlock(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; window?: unknown; SharedArrayBuffer?: unknown };
  return !!g.process?.versions?.node && g.window === undefined && typeof g.SharedArrayBuffer === 'function' && typeof setImmediate === 'function';
}

/**
 * A waiter with `policy` (passThrough where the thread cannot block or the policy does not sleep).
 * Several waits may be pending at once; each runs its own turns.
 */
export function hostWaiter(policy: WaitPolicy, blocking = canBlock()): Waiter {
  if (!blocking || !(policy.sleepUs > 0)) return passThrough;
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const sleepMs = policy.sleepUs / 1000;
  const spinMs = Math.max(0, policy.spinUs) / 1000;
  return async <T>(p: Promise<T>): Promise<T> => {
    let pending = true;
    const t0 = performance.now();
    const turn = (): void => {
      if (!pending) return;
      if (performance.now() - t0 >= spinMs) Atomics.wait(cell, 0, 0, sleepMs);
      setImmediate(turn);
    };
    setImmediate(turn);
    try {
      return await p;
    } finally {
      pending = false;
    }
  };
}
