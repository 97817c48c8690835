/**
 * Where the five weight buffers live on the device, and how kernels bind them: read-only storage
 * buffers, or (the `texture` kernel form) 2D rgba32uint textures holding the same u32 words, four
 * per texel, row-major, TEXW texels a row (layout.consts.TEX_SHIFT = log2 TEXW; the WGSL side is
 * weightDecls in kernels-wgsl/common.wgsl.ts). One function makes both the bind-group-layout
 * entries and the resources, for the executor and for the device model's stage
 * microbenchmarks alike, so the two always bind what the composed kernels declare.
 */
import { BINDING } from '../kernels-wgsl/common.wgsl.ts';
import { KloopError } from '../errors.ts';
import type { Layout } from './layout.ts';

export const WEIGHT_BUFFERS = ['emb', 'attn', 'ffn1', 'ffn3', 'ffn2'] as const;
export type WeightBuffer = (typeof WEIGHT_BUFFERS)[number];

const WHAT: Record<WeightBuffer, string> = { emb: 'embedding', attn: 'attention weights', ffn1: 'gate weights', ffn3: 'up weights', ffn2: 'down weights' };

export interface WeightStore {
  layoutEntries: GPUBindGroupLayoutEntry[];
  bindEntries: GPUBindGroupEntry[];
  /** Device bytes the weights take (texture rows are padded to whole rows). */
  bytes: number;
  destroy(): void;
}

/**
 * Bytes of a storage buffer of `words` 4-byte words (a multiple of 16, at least 16), checked
 * against the adapter's binding and buffer limits: over them, an error naming the model (`owner`),
 * the buffer and the adapter. Every storage buffer the executor creates is sized here.
 */
export function storageBufferBytes(limits: GPUSupportedLimits, words: number, what: string, owner: string, adapter: string): number {
  const bytes = Math.max(16, Math.ceil((words * 4) / 16) * 16);
  if (bytes > limits.maxStorageBufferBindingSize || bytes > limits.maxBufferSize) {
    throw new KloopError(
      `${owner}: the ${what} buffer needs ${(bytes / 2 ** 20).toFixed(1)} MiB, over this adapter's binding limit of ` +
        `${(limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB (${adapter})`,
    );
  }
  return bytes;
}

/** Texture geometry of a buffer of `words` u32 words: TEXW texels a row. */
export function textureExtent(words: number, shift: number): { width: number; height: number } {
  const texels = Math.max(1, Math.ceil(words / 4));
  const width = 1 << shift;
  return { width, height: Math.ceil(texels / width) };
}

/**
 * Creates the weight buffers (storage) or textures of `layout`, filled with `data` when given
 * (else left zero: microbenchmarks). Sizes are checked against the adapter's limits first.
 */
export function createWeightStore(device: GPUDevice, layout: Layout, name: string, adapter: string, data?: Record<WeightBuffer, Uint32Array>): WeightStore {
  const limits = device.limits;
  const texture = layout.kernel.texture === true;
  const shift = layout.consts.TEX_SHIFT;
  const layoutEntries: GPUBindGroupLayoutEntry[] = [];
  const bindEntries: GPUBindGroupEntry[] = [];
  const owned: { destroy(): void }[] = [];
  let bytes = 0;
  for (const b of WEIGHT_BUFFERS) {
    const words = layout.sizes[b];
    const binding = BINDING[b];
    if (texture) {
      const { width, height } = textureExtent(words, shift!);
      if (width > limits.maxTextureDimension2D || height > limits.maxTextureDimension2D) {
        throw new KloopError(`${name}: the ${WHAT[b]} need a ${width}x${height} texture, over this adapter's ${limits.maxTextureDimension2D} (${adapter}); use storage buffers`);
      }
      const tex = device.createTexture({ label: `w_${b}`, size: [width, height], format: 'rgba32uint', usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST });
      if (data) {
        const full = new Uint32Array(width * height * 4);
        full.set(data[b]);
        device.queue.writeTexture({ texture: tex }, full, { bytesPerRow: width * 16, rowsPerImage: height }, [width, height]);
      }
      owned.push(tex);
      bytes += width * height * 16;
      layoutEntries.push({ binding, visibility: GPUShaderStage.COMPUTE, texture: { sampleType: 'uint' } });
      bindEntries.push({ binding, resource: tex.createView() });
    } else {
      const size = storageBufferBytes(limits, words, WHAT[b], name, adapter);
      const buf = device.createBuffer({ label: `w_${b}`, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
      if (data) device.queue.writeBuffer(buf, 0, data[b]);
      owned.push(buf);
      bytes += size;
      layoutEntries.push({ binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } });
      bindEntries.push({ binding, resource: { buffer: buf } });
    }
  }
  return { layoutEntries, bindEntries, bytes, destroy: () => owned.forEach((o) => o.destroy()) };
}
