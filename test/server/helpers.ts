/**
 * A real `kloop serve` in a child process on 127.0.0.1 (a free port), and `kloop generate --json`
 * to compare it with. Both run the sources through tsx, with KLOOP_MODELS pointing at the models.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { modelsDir, repoRoot } from '../helpers/paths.ts';

const env = () => ({ ...process.env, KLOOP_MODELS: modelsDir, KLOOP_DEBUG: '1' });

export interface ServerProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  child: ChildProcess;
  /** Everything it wrote on stderr so far. */
  stderr(): string;
  /** Resident set size (bytes) of the server process, from /proc. */
  rss(): number;
  /** Whether it is still running. */
  alive(): boolean;
  /** SIGTERM, then waits for the exit; returns the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `kloop serve --port 0 ...args` and resolves once it listens (its stderr names the URL). */
export function startServer(args: string[], timeoutMs = 60_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', ...args], {
    cwd: repoRoot,
    env: env(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  let exited = false;
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    exited = true;
    resolve(code);
  }));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kloop serve did not start in ${timeoutMs} ms:\n${err}`));
    }, timeoutMs);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      err += s;
      const m = /kloop serve: (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1]!,
          child,
          stderr: () => err,
          rss: () => {
            const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
            return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
          },
          alive: () => !exited,
          stop: async () => {
            if (!exited) child.kill('SIGTERM');
            return exit;
          },
        });
      }
    });
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`kloop serve exited (${code}) before listening:\n${err}`));
    });
  });
}

export interface GenerateJson {
  promptTokens: number[];
  tokens: number[];
  text: string;
  stoppedAt: string;
}

/** `kloop generate --json ...args` (reference mode unless args say otherwise). */
export function kloopGenerate(args: string[]): Promise<GenerateJson> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'generate', '--json', ...args], { cwd: repoRoot, env: env() }, (e, stdout, stderr) => {
      if (e) reject(new Error(`kloop generate failed: ${stderr}`));
      else resolve(JSON.parse(stdout) as GenerateJson);
    });
  });
}
