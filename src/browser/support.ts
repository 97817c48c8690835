/**
 * What the page needs from WebGPU, checked before anything is loaded, with a message a visitor
 * can act on for each missing piece.
 */
import type { AdapterDescription } from '../engine/device.ts';

/**
 * Storage buffers per shader stage the executor requires (gpu-executor.ts checks the same): the
 * kernels bind five weight buffers (embedding, attention, gate, up, down), the KV cache, the
 * activations and the control words.
 */
export const STORAGE_BUFFERS_NEEDED = 8;
/** Smallest workgroup the kernels run with. */
export const INVOCATIONS_NEEDED = 64;
/** Features used when present; none is required. */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

export interface WebGPUSupport {
  /** Everything needed is there. */
  ok: boolean;
  /** One sentence per blocking problem, saying what to do. */
  problems: string[];
  /** Non-blocking remarks (optional features absent, CPU adapter...). */
  notes: string[];
  adapter?: AdapterDescription & { device: string; fallback: boolean };
  features: string[];
  limits: Record<string, number>;
}

const LIMITS_SHOWN = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension',
] as const;

/** Checks navigator.gpu, an adapter, the limits the kernels need, and lists optional features. */
export async function checkWebGPU(gpu?: GPU): Promise<WebGPUSupport> {
  const out: WebGPUSupport = { ok: false, problems: [], notes: [], features: [], limits: {} };
  const g = globalThis as { isSecureContext?: boolean; navigator?: { gpu?: GPU; userAgent?: string } };
  gpu ??= g.navigator?.gpu;
  if (!gpu) {
    if (g.isSecureContext === false) {
      out.problems.push(
        'WebGPU needs a secure context and this page is not one: open it as http://127.0.0.1:PORT/ or http://localhost:PORT/ (or over https).',
      );
    } else {
      out.problems.push(
        'This browser has no WebGPU (navigator.gpu is missing). Use Chrome or Edge 113+, Safari 26+ or Firefox 141+ (Windows); ' +
          'on Linux, Chrome needs --enable-unsafe-webgpu --enable-features=Vulkan.',
      );
    }
    return out;
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    out.problems.push(`WebGPU could not open an adapter (${(e as Error).message}).`);
    return out;
  }
  if (!adapter) {
    out.problems.push(
      'WebGPU is present but offers no adapter: the GPU or its driver may be blocklisted (see chrome://gpu), or hardware acceleration is off.',
    );
    return out;
  }
  const info = adapter.info;
  const fallback = Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  out.adapter = {
    vendor: info.vendor || 'unknown',
    architecture: info.architecture || 'unknown',
    description: info.description || '',
    device: info.device || '',
    fallback,
  };
  out.features = [...adapter.features].map(String).sort();
  for (const k of LIMITS_SHOWN) out.limits[k] = adapter.limits[k];
  const l = adapter.limits;
  if (l.maxStorageBuffersPerShaderStage < STORAGE_BUFFERS_NEEDED) {
    out.problems.push(
      `This adapter binds at most ${l.maxStorageBuffersPerShaderStage} storage buffers per shader stage; the kernels need ${STORAGE_BUFFERS_NEEDED}.`,
    );
  }
  if (l.maxComputeInvocationsPerWorkgroup < INVOCATIONS_NEEDED) {
    out.problems.push(`This adapter runs at most ${l.maxComputeInvocationsPerWorkgroup} invocations per workgroup; the kernels need ${INVOCATIONS_NEEDED}.`);
  }
  for (const f of OPTIONAL_FEATURES) {
    if (!adapter.features.has(f)) out.notes.push(`Feature ${f} is absent (optional: the kernels do not need it).`);
  }
  if (/swiftshader|llvmpipe|lavapipe/i.test(`${out.adapter.architecture} ${out.adapter.description}`) || fallback) {
    out.notes.push('This is a CPU implementation of WebGPU (no GPU acceleration): expect slow kernel compilation and low token rates.');
  }
  out.ok = out.problems.length === 0;
  return out;
}
