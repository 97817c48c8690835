/**
 * WebGPU device acquisition. In Node the `webgpu` package (Dawn) provides navigator.gpu; in the
 * browser it is the page's own. Adapters are ranked: a real GPU first, then Mesa lavapipe, then
 * SwiftShader; `--adapter NAME` picks one by (case-insensitive) substring. The device is
 * requested with the adapter's real limits, never the spec maxima assumed.
 */
import { probeLockstep, probeSubgroupRows } from './lockstep.ts';
import { SUBGROUP_WIDTHS, subgroupLaneSum } from '../kernels-wgsl/subgroup.wgsl.ts';
import { KloopError, OptionError } from '../errors.ts';
import type { KernelOptions } from './layout.ts';
import { type Waiter, hostWaiter, passThrough, waitPolicy } from './host-wait.ts';

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  description: string;
}

export interface AcquiredDevice {
  device: GPUDevice;
  adapter: GPUAdapter;
  info: AdapterDescription;
  /** Name Dawn lists the adapter under (Node), or the description (browser). */
  name: string;
  /** A CPU implementation (lavapipe, SwiftShader): tuned differently from a GPU. */
  cpu: boolean;
  features: string[];
  /** The navigator.gpu object the adapter came from: kept alive as long as the device. */
  gpu: GPU;
  /**
   * CPU adapters: the workgroup size the adapter runs as one SIMD row in lockstep (measured,
   * lockstep.ts), 0 when none; such adapters get the barrier-free kernel form. 0 on GPUs.
   */
  lockstepWidth: number;
  /**
   * The subgroup width S whose rows (S consecutive invocations, all active) the kernels use in
   * workgroups of the adapter's default size, measured by a probe (lockstep.ts); 0 when none.
   * CPU adapters share input values over them (one invocation per row), GPUs reduce a row's lanes
   * with them (kernels-wgsl/subgroup.wgsl.ts).
   */
  subgroupWidth: number;
  /** The probe's answer per workgroup size (subgroupRowsAt). */
  subgroupRows: Map<number, number>;
  /**
   * How the host waits for this device's readbacks (host-wait.ts): in Node, sleeping in short
   * steps instead of spinning the event loop; in a browser the promise as it is.
   */
  wait: Waiter;
}

/**
 * The subgroup width whose rows the kernels may use in workgroups of `wg` on this device
 * (probeSubgroupRows, once per size, then remembered); 0 when none.
 */
export async function subgroupRowsAt(gpu: AcquiredDevice, wg: number): Promise<number> {
  const known = gpu.subgroupRows;
  let s = known.get(wg);
  if (s === undefined) {
    const info = gpu.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
    s = await probeSubgroupRows(gpu.device, wg, { min: info.subgroupMinSize, max: info.subgroupMaxSize });
    known.set(wg, s);
  }
  return s;
}

/**
 * Workgroup size of the kernels on GPUs for models of width `dim` at least GPU_WIDE_DIM, within
 * the device's limit; 256 for narrower ones. The fused kernels run about one workgroup per
 * multiprocessor (occupancy discovery found 132 on an H200 at 256 and at 1024 invocations: the
 * whole-model kernel's registers allow no more), so the workgroup size is the number of warps
 * that hide memory latency. Measured on the H200 (bench/RESULTS.md): Llama-3.2-1B (dim 2048)
 * q4_0 looped:16 591 tokens/s at 1024 against 378 at 256 (f32 413 against 187); stories260K
 * (dim 64), whose rows leave most of a large workgroup idle, looped:16 6815 at 1024 against
 * 10305 at 256.
 */
export const GPU_WORKGROUP_SIZE = 1024;
export const GPU_WIDE_DIM = 1024;

/**
 * The workgroup size of this adapter's kernels for a model of width `dim`: `want`, else on GPUs
 * GPU_WORKGROUP_SIZE (dim >= GPU_WIDE_DIM) or 256, on CPU adapters cpuWorkgroupSize; within the
 * device's limit.
 */
export function kernelWg(gpu: AcquiredDevice, want: Partial<KernelOptions> = {}, dim = 0): number {
  const gpuWg = dim >= GPU_WIDE_DIM ? GPU_WORKGROUP_SIZE : 256;
  return Math.min(want.wg ?? (gpu.cpu ? cpuWorkgroupSize(gpu) : gpuWg), gpu.device.limits.maxComputeInvocationsPerWorkgroup);
}

/**
 * Workgroup size on a CPU adapter: its lockstep width when it has one (one SIMD row, no
 * barriers: llvmpipe with AVX 8, SwiftShader 4), else one or two SIMD rows of its JIT (llvmpipe
 * 8 lanes at 256 bits, SwiftShader 4), so that a workgroup barrier switches between at most two
 * coroutines. Measured on stories260K (device-model stage microbenchmarks, bench/RESULTS.md): a
 * norm or the sampler costs about 1 us at 16 against 7 to 25 us at 64 on llvmpipe; SwiftShader
 * without its lockstep row is fastest at 8.
 */
export function cpuWorkgroupSize(gpu: Pick<AcquiredDevice, 'name' | 'lockstepWidth'>): number {
  if (gpu.lockstepWidth > 0) return gpu.lockstepWidth;
  return /swiftshader/i.test(gpu.name) ? 8 : 16;
}

/**
 * The kernel options for this adapter: `want`'s fields, the adapter's defaults for the rest (CPU
 * adapters: the 'cpu' style, one invocation per row, the lockstep form where the adapter runs
 * the workgroup as one row; GPUs: kernelWg's size for a model of width `dim`, 32 invocations
 * per row). Asking for lockstep where the probe did not find it is an OptionError.
 */
export function adapterKernel(gpu: AcquiredDevice, want: Partial<KernelOptions> = {}, dim = 0): KernelOptions {
  const kernel: KernelOptions = {
    wg: kernelWg(gpu, want, dim),
    lanes: want.lanes ?? (gpu.cpu ? 1 : 32),
    tile: want.tile,
    style: want.style ?? (gpu.cpu ? 'cpu' : 'gpu'),
    vec4: want.vec4,
    padStaging: want.padStaging,
    texture: want.texture,
  };
  // Texture weights where measured to pay: the CPU adapters, llvmpipe and SwiftShader (see KernelOptions.texture).
  if (kernel.texture === undefined && kernel.style === 'cpu' && gpu.cpu) kernel.texture = 'auto';
  const lockstep = kernel.style === 'cpu' && gpu.lockstepWidth > 0 && kernel.wg <= gpu.lockstepWidth;
  if (want.lockstep && !lockstep) {
    throw new OptionError('lockstep', `this adapter does not run ${kernel.wg}-invocation workgroups in lockstep (measured width ${gpu.lockstepWidth}, style ${kernel.style})`);
  }
  // Subgroup rows measured at this workgroup size (subgroupRowsAt): one invocation per row shares
  // input values over them (the CPU form, widths 4 and 8), several per row reduce with them.
  const probed = gpu.subgroupRows.get(kernel.wg) ?? 0;
  const sharing = kernel.style === 'cpu' && kernel.lanes === 1 && (SUBGROUP_WIDTHS as readonly number[]).includes(probed);
  const sg = sharing || subgroupLaneSum({ sg: probed, lanes: kernel.lanes, wg: kernel.wg }) ? probed : 0;
  if (want.subgroups && want.subgroups !== sg) {
    const measured = gpu.subgroupRows.has(kernel.wg) ? `measured width ${probed} at ${kernel.wg} invocations` : `not measured at ${kernel.wg} invocations`;
    throw new OptionError('subgroups', `this adapter's kernels cannot use subgroups of ${want.subgroups} (${measured}; lanes ${kernel.lanes}, style ${kernel.style})`);
  }
  return { ...kernel, lockstep: want.lockstep ?? lockstep, subgroups: want.subgroups ?? sg };
}

/**
 * Most workgroups a per-op dispatch takes on a CPU adapter: its hardware threads (every stage
 * walks its work items grid-stride, so any count is correct). These adapters run about one
 * workgroup per thread at a time and pay a fixed cost per workgroup, so with 16-invocation
 * workgroups a matvec split into 32 tiles gains nothing over the same rows in one per thread.
 */
export function cpuPerOpGroups(): number {
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return Math.max(2, n ?? 2);
}
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const INSTALL_HINT =
  'install a GPU driver with Vulkan support, or on Debian: libvulkan1 and mesa-vulkan-drivers from bookworm-backports (lavapipe), or chromium (SwiftShader)';

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';

type DawnModule = { create(options: string[]): GPU; globals: Record<string, unknown> };
let dawn: DawnModule | undefined;

async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  // Let the Vulkan loader see SwiftShader next to the system drivers, as a last resort.
  // Module names in variables, so that a browser bundler leaves these Node-only imports alone.
  const fsModule = 'node:fs';
  const fs = (await import(/* @vite-ignore */ fsModule)) as typeof import('node:fs');
  const env = process.env;
  if (!env.VK_ICD_FILENAMES && !env.VK_DRIVER_FILES && !env.VK_ADD_DRIVER_FILES && fs.existsSync(SWIFTSHADER_ICD)) {
    env.VK_ADD_DRIVER_FILES = SWIFTSHADER_ICD;
  }
  const mod = 'webgpu';
  try {
    dawn = (await import(/* @vite-ignore */ mod)) as DawnModule;
  } catch (e) {
    throw new KloopError(`WebGPU: cannot load the 'webgpu' package (${(e as Error).message}); run npm install`);
  }
  Object.assign(globalThis, dawn.globals);
  return dawn;
}

/** Names of the adapters Dawn can open (Node only). */
export async function listAdapterNames(): Promise<string[]> {
  const d = await loadDawn();
  try {
    const gpu = d.create(['adapter=\u0001kloop-list\u0001']);
    await gpu.requestAdapter();
  } catch (e) {
    const names = [...String((e as Error).message).matchAll(/name: '([^']*)'/g)].map((m) => m[1]);
    return names;
  }
  return [];
}

const cpuName = (s: string): boolean => /llvmpipe|lavapipe|swiftshader|software|fallback/i.test(s);
function rank(name: string): number {
  if (!cpuName(name)) return 0;
  if (/llvmpipe|lavapipe/i.test(name)) return 1;
  return 2;
}

function describe(adapter: GPUAdapter): AdapterDescription {
  const i = adapter.info;
  return { vendor: i.vendor || 'unknown', architecture: i.architecture || 'unknown', description: i.description || i.device || 'unknown' };
}

async function openDevice(gpu: GPU, adapter: GPUAdapter, name: string): Promise<AcquiredDevice> {
  const l = adapter.limits;
  const wanted: (keyof GPUSupportedLimits)[] = [
    'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxStorageBuffersPerShaderStage',
    'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension', 'maxUniformBufferBindingSize',
  ];
  const requiredLimits: Record<string, number> = {};
  for (const k of wanted) requiredLimits[k] = l[k] as number;
  const features = [...adapter.features] as string[];
  const requiredFeatures = (['shader-f16', 'timestamp-query', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = describe(adapter);
  const cpu = cpuName(name) || cpuName(`${info.vendor} ${info.architecture} ${info.description}`);
  const lockstepWidth = cpu ? await probeLockstep(device) : 0;
  const wait = isNode ? hostWaiter(waitPolicy(cpu)) : passThrough;
  const acquired: AcquiredDevice = { device, adapter, info, name, cpu, features, gpu, lockstepWidth, subgroupWidth: 0, subgroupRows: new Map(), wait };
  acquired.subgroupWidth = await subgroupRowsAt(acquired, kernelWg(acquired));
  return acquired;
}

/**
 * Whether adapter `name` is the one asked for: its name contains `want` (any case); "lavapipe",
 * the Vulkan driver's name, also picks the adapter Dawn names after its JIT, llvmpipe.
 */
export function adapterMatches(name: string, want: string): boolean {
  const n = name.toLowerCase();
  const w = want.toLowerCase();
  return n.includes(w) || (w === 'lavapipe' && n.includes('llvmpipe'));
}

/**
 * Opens the best adapter, or the one whose name contains `want` (adapterMatches). Says on stderr when it falls
 * back to SwiftShader; throws a KloopError saying what to install when nothing is found.
 */
export async function acquireDevice(want?: string, log: (s: string) => void = (s) => console.error(s)): Promise<AcquiredDevice> {
  if (!isNode) {
    const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    if (!gpu) throw new KloopError('WebGPU is not available in this browser (navigator.gpu is missing)');
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) throw new KloopError('WebGPU: the browser offers no adapter');
    const d = describe(adapter);
    // Browsers may leave the description empty: name the adapter by what they do report.
    const fallback = adapter.info.isFallbackAdapter;
    const name = [d.vendor, d.architecture, d.description, fallback ? 'swiftshader (fallback)' : ''].join(' ');
    return openDevice(gpu, adapter, name);
  }
  const d = await loadDawn();
  const names = await listAdapterNames();
  if (names.length === 0) throw new KloopError(`WebGPU: no adapter found; ${INSTALL_HINT}`);
  let name: string;
  if (want) {
    const found = names.find((n) => adapterMatches(n, want));
    if (!found) throw new KloopError(`adapter '${want}': no such WebGPU adapter (available: ${names.join('; ')})`);
    name = found;
  } else {
    name = [...names].sort((a, b) => rank(a) - rank(b))[0];
    if (rank(name) === 2) log(`kloop: no GPU or lavapipe adapter found; using SwiftShader (${name})`);
  }
  const gpu = d.create([`adapter=${name}`]);
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new KloopError(`WebGPU: adapter '${name}' could not be opened; ${INSTALL_HINT}`);
  return openDevice(gpu, adapter, name);
}

/** Everything `kloop devices` prints: each adapter with its limits and features. */
export async function describeAdapters(): Promise<
  { name: string; info: AdapterDescription; features: string[]; limits: Record<string, number> }[]
> {
  const d = await loadDawn();
  const out = [];
  for (const name of await listAdapterNames()) {
    const adapter = await d.create([`adapter=${name}`]).requestAdapter();
    if (!adapter) continue;
    const l = adapter.limits;
    out.push({
      name,
      info: describe(adapter),
      features: [...adapter.features].sort() as string[],
      limits: {
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize, maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize, maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      },
    });
  }
  return out;
}
