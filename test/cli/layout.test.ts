/**
 * The source tree's shape: the libraries (bench, timing model, browser) import nothing from the
 * CLI, which sits on top of them; no file in src/ grows past 450 lines. (Import cycles are
 * checked by dpdm: `npm run check:cycles`, run by CI.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const src = join(import.meta.dirname, '../../src');
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

describe('source layout', () => {
  it('bench, rdu-emulation, browser and engine import nothing from src/cli', () => {
    const offenders = files(src)
      .filter((f) => !relative(src, f).startsWith('cli/'))
      .filter((f) => /from '(\.\.\/)+cli\/|import\('(\.\.\/)+cli\//.test(readFileSync(f, 'utf8')))
      .map((f) => relative(src, f));
    expect(offenders).toEqual([]);
  });

  it('no file in src/ is over 450 lines', () => {
    const long = files(src)
      .map((f) => ({ file: relative(src, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((x) => x.lines > 450);
    expect(long).toEqual([]);
  });
});
