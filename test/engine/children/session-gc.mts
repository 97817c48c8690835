/**
 * Child process of session-gc.test.ts (run with --expose-gc): opens and disposes sessions on a
 * device source whose device is never lost (as a shared device while it lives), then reports how
 * many of them the garbage collector could not free.
 */
import path from 'node:path';
import { openSession } from '../../../src/engine/session.ts';
import type { AcquiredDevice } from '../../../src/engine/device.ts';
import { loadModel } from '../../../src/loader/index.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const model = await loadModel(path.join(process.argv[2]!, 'stories260K', 'stories260K.bin'));
const never = new Promise<GPUDeviceLostInfo>(() => {});
const device = { device: { lost: never, destroy() {} }, info: { vendor: 'test', architecture: 'none', description: 'a device never lost' }, name: 'never lost' } as unknown as AcquiredDevice;
const N = 8;
const refs: WeakRef<object>[] = [];
async function openAndDispose(): Promise<void> {
  const s = openSession(model, { device: async () => device });
  await s.device();
  await s.dispose();
  refs.push(new WeakRef(s));
}
for (let i = 0; i < N; i++) await openAndDispose();
for (let i = 0; i < 3; i++) {
  await new Promise((r) => setTimeout(r, 10));
  gc();
}
console.log(JSON.stringify({ sessions: N, alive: refs.filter((r) => r.deref() !== undefined).length }));
