/** Choosing the adapter by name (engine/device.ts): `--adapter NAME`, openSession's `adapter`. */
import { describe, expect, it } from 'vitest';
import { acquireDevice, adapterMatches, listAdapterNames } from '../../src/engine/device.ts';
import { KloopError } from '../../src/errors.ts';
import { isNoWebGpu } from '../helpers/gpu.ts';

// No adapter, or no WebGPU at all, is a missing prerequisite (printed); any other error fails the file.
let noAdapter = 'WebGPU offers no adapter here';
const names = await listAdapterNames().catch((e: unknown) => {
  if (!isNoWebGpu(e)) throw e;
  noAdapter = e.message;
  return [] as string[];
});
if (names.length === 0) console.log(`SKIPPED the unknown-name test: ${noAdapter}`);

describe('adapter names', () => {
  it('match by a part of the name in any case; "lavapipe" also picks llvmpipe', () => {
    const llvmpipe = 'llvmpipe (LLVM 15.0.6, 256 bits)';
    const swiftshader = 'SwiftShader Device (Subzero)';
    expect(adapterMatches(llvmpipe, 'llvmpipe')).toBe(true);
    expect(adapterMatches(llvmpipe, 'LLVMpipe')).toBe(true);
    expect(adapterMatches(llvmpipe, 'lavapipe')).toBe(true);
    expect(adapterMatches(llvmpipe, 'LavaPipe')).toBe(true);
    expect(adapterMatches(swiftshader, 'swiftshader')).toBe(true);
    expect(adapterMatches(swiftshader, 'lavapipe')).toBe(false);
    expect(adapterMatches(llvmpipe, 'swiftshader')).toBe(false);
    expect(adapterMatches('NVIDIA H200', 'nvidia')).toBe(true);
    expect(adapterMatches('NVIDIA H200', 'lavapipe')).toBe(false);
  });

  it.skipIf(names.length === 0)('an unknown name is a KloopError naming it and the adapters there are', async () => {
    const err = await acquireDevice('NoSuchAdapter', () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KloopError);
    expect((err as Error).message).toMatch(/adapter 'NoSuchAdapter': no such WebGPU adapter/);
    for (const n of names) expect((err as Error).message).toContain(n);
  });
});
