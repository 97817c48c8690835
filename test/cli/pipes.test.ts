/**
 * A reader of stdout that goes away (`kloop generate | head -n 1`): the command stops where it
 * is and exits with 0, with nothing on stderr (no Node stack trace of an unhandled EPIPE).
 */
import { describe, expect, it } from 'vitest';
import { kloopClosedStdout } from './kloop.ts';

describe('stdout closed by its reader', () => {
  it('generate stops generating: exit 0, no stats line, no stack trace', async () => {
    // 400 tokens ignoring EOS would end with the stats line on stderr; its absence says the
    // generation stopped at the closed pipe.
    const r = await kloopClosedStdout(['generate', '--mode', 'reference', '--max-tokens', '400', '--ignore-eos']);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  const commands: string[][] = [
    ['--help'],
    ['help', 'generate'],
    ['generate', '--mode', 'reference', '--max-tokens', '4', '--json'],
    ['encode', '--text', 'Once upon a time'],
    ['timing-model'],
    ['timing-model', '--validate', '--json'],
    ['bench', '--help'],
    ['convert', '--help'],
  ];
  it.concurrent.each(commands.map((c) => [c.join(' '), c] as const))('kloop %s: exit 0, nothing on stderr', async (_name, args) => {
    const r = await kloopClosedStdout([...args]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});
