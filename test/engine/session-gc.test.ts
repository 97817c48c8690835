/**
 * A disposed session is freed even while the device it ran on lives on (the shared device of a
 * page): its lost-device listener must not keep it, and its model, in memory. Measured in a child
 * process with --expose-gc (children/session-gc.mts).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { modelsDir } from '../helpers/paths.ts';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'children', 'session-gc.mts');

describe('a disposed session on a device that lives on', () => {
  it('is garbage-collected (at most the last one may linger)', async () => {
    const out = await new Promise<string>((ok, fail) =>
      execFile(process.execPath, ['--expose-gc', '--import', 'tsx', child, modelsDir], { timeout: 120_000 }, (e, stdout, stderr) => (e ? fail(new Error(`${e.message}\n${stderr}`)) : ok(stdout))),
    );
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as { sessions: number; alive: number };
    expect(r.sessions).toBe(8);
    expect(r.alive).toBeLessThanOrEqual(1);
  }, 180_000);
});
