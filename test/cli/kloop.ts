/** Runs the `kloop` command as a user runs it (a child process through tsx), for the CLI tests. */
import { execFile, spawn } from 'node:child_process';
import { expect } from 'vitest';
import { modelsDir, repoRoot } from '../helpers/paths.ts';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `kloop ...args` (src/cli/main.ts, or another script) with KLOOP_MODELS set (or `env`'s). */
export function kloop(args: string[], script = 'src/cli/main.ts', env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', script, ...args],
      { cwd: repoRoot, env: { ...process.env, KLOOP_MODELS: modelsDir, KLOOP_DEBUG: '', ...env }, maxBuffer: 1 << 26 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * Runs `kloop ...args` with its stdout a pipe whose reader is gone before the command writes (as
 * after `| head` has read what it wanted): the exit code and stderr.
 */
export function kloopClosedStdout(args: string[]): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, KLOOP_MODELS: modelsDir, KLOOP_DEBUG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

/** Asserts a failed run: exit 1 and exactly one stderr line `kloop: ...` matching `what`. */
export function expectOneLineError(r: Run, what: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^kloop: /);
  expect(lines[0]).toMatch(what);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}
