/**
 * Compiling WGSL and creating compute pipelines inside validation error scopes, so that a bad
 * kernel becomes a one-line KloopError naming the kernel, the line and the source line. Used by
 * the executors and the device-model microbenchmarks alike.
 */
import { KloopError } from '../errors.ts';

/** Dawn's messages span lines ("- While validating ..."): user-facing errors are one line. */
export const oneLine = (m: string): string =>
  m
    .split('\n')
    .map((l) => l.trim().replace(/^- /, ''))
    .filter(Boolean)
    .join('; ');

export async function compileWgsl(device: GPUDevice, code: string, label: string): Promise<GPUShaderModule> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code, label });
  const info = await module.getCompilationInfo();
  const err = await device.popErrorScope();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length > 0 || err) {
    const first = errors[0];
    const where = first ? `line ${first.lineNum}: ${oneLine(first.message)}` : oneLine(err?.message ?? '');
    const line = first ? code.split('\n')[first.lineNum - 1]?.trim() : '';
    throw new KloopError(`WGSL ${label} kernel failed to compile: ${where}${line ? ` (${line})` : ''}`);
  }
  return module;
}

export async function computePipeline(
  device: GPUDevice, layout: GPUPipelineLayout | 'auto', module: GPUShaderModule, entryPoint: string,
): Promise<GPUComputePipeline> {
  // Synchronous creation: Dawn's asynchronous path has crashed in lavapipe's compiler threads.
  device.pushErrorScope('validation');
  const p = device.createComputePipeline({ layout, compute: { module, entryPoint } });
  const err = await device.popErrorScope();
  if (err) throw new KloopError(`WebGPU pipeline ${entryPoint}: ${oneLine(err.message)}`);
  return p;
}
