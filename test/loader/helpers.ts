import { expect } from 'vitest';
import { KloopError } from '../../src/errors.ts';
import type { Matrix } from '../../src/loader/types.ts';

/** Expect `p` to reject with a one-line KloopError matching `re`. */
export async function expectKloopError(p: Promise<unknown>, re: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KloopError);
  expect((e as Error).message).toMatch(re);
  expect((e as Error).message).not.toContain('\n');
}

/** Fast bitwise equality of float arrays (vitest's deep equality is slow on large arrays). */
export function expectSameF32(ma: Matrix | undefined, mb: Matrix | undefined, what = ''): void {
  const a = ma as Float32Array | undefined;
  const b = mb as Float32Array | undefined;
  expect(a, what).toBeInstanceOf(Float32Array);
  expect(b, what).toBeInstanceOf(Float32Array);
  expect(a!.length, what).toBe(b!.length);
  const ba = Buffer.from(a!.buffer, a!.byteOffset, a!.byteLength);
  const bb = Buffer.from(b!.buffer, b!.byteOffset, b!.byteLength);
  expect(ba.equals(bb), `${what}: arrays differ`).toBe(true);
}
