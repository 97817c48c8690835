/** Shared by the hardening tests: a forced GC, memory snapshots, device call counters, time bounds. */
import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
/** A full garbage collection (so that memory snapshots compare live data, not garbage). */
export const gc = vm.runInNewContext('gc') as () => void;

export interface MemorySnapshot {
  rss: number;
  heapUsed: number;
  external: number;
}

export function memory(): MemorySnapshot {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

export const MiB = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** GPUDevice methods that allocate device objects: none may run per token once set up. */
export const CREATE_METHODS = [
  'createBuffer', 'createBindGroup', 'createBindGroupLayout', 'createPipelineLayout', 'createShaderModule',
  'createComputePipeline', 'createComputePipelineAsync', 'createTexture', 'createQuerySet', 'createSampler',
] as const;

/** Count calls of the device's create* methods (wrapping them on the instance). */
export function countCreates(device: GPUDevice): { counts: Record<string, number>; reset(): void; total(): number } {
  const counts: Record<string, number> = {};
  const d = device as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of CREATE_METHODS) {
    const orig = d[name];
    if (typeof orig !== 'function') continue;
    const bound = orig.bind(device);
    d[name] = (...a: unknown[]) => {
      counts[name] = (counts[name] ?? 0) + 1;
      return bound(...a);
    };
  }
  return {
    counts,
    reset: () => {
      for (const k of Object.keys(counts)) delete counts[k];
    },
    total: () => Object.values(counts).reduce((a, b) => a + b, 0),
  };
}

/** `p`, or a rejection naming `what` when it has not settled within `ms` (a hang). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
