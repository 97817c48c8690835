/**
 * The default model (stories260K): $KLOOP_MODELS/stories260K/, else its home (a checkout's
 * weights/stories260K/; an installed package's $XDG_CACHE_HOME/kloop/models/stories260K/, by
 * default under ~/.cache, not inside node_modules, which a reinstall wipes and a global install
 * may not let us write), else ../shared/models/stories260K/ beside a checkout,
 * else downloaded from Hugging Face (karpathy/tinyllamas) into its home with a progress bar on
 * stderr and a sha256 check.
 */
import { createHash } from 'node:crypto';
import { mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve, dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KloopError } from '../errors.ts';

export const DEFAULT_MODEL = 'stories260K';
const HF_BASE = 'https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K';

/** The files of the default model and their sha256 (as published on Hugging Face). */
export const DEFAULT_MODEL_FILES: readonly { name: string; sha256: string }[] = [
  { name: 'stories260K.bin', sha256: 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696' },
  { name: 'tok512.bin', sha256: '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312' },
];

export interface ResolveOptions {
  /** Environment to read KLOOP_MODELS from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Repository root holding weights/ (default: two folders above this file). */
  repoRoot?: string;
  /** fetch implementation (default globalThis.fetch); tests inject one. */
  fetch?: (url: string) => Promise<Response>;
  /** Where the progress bar goes (default process.stderr). */
  stderr?: { write(s: string): unknown; isTTY?: boolean };
}

const defaultRepoRoot = (): string => resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Whether `root` is an installed package (inside node_modules) rather than a checkout. */
const installed = (root: string): boolean => resolve(root).split(sep).includes('node_modules');

/** The folder that holds the default model's folder: see the module's comment. */
export function defaultModelsHome(env: Record<string, string | undefined> = process.env, repoRoot = defaultRepoRoot()): string {
  if (!installed(repoRoot)) return join(repoRoot, 'weights');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kloop', 'models');
}

/** Path of stories260K.bin, downloading it (and tok512.bin) when no local copy exists. */
export async function resolveDefaultModel(opts: ResolveOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const repoRoot = opts.repoRoot ?? defaultRepoRoot();
  const candidates: string[] = [];
  if (env.KLOOP_MODELS) candidates.push(join(env.KLOOP_MODELS, DEFAULT_MODEL));
  const weightsDir = join(defaultModelsHome(env, repoRoot), DEFAULT_MODEL);
  candidates.push(weightsDir);
  // A shared models folder beside a checkout (the layout the tests and CI use).
  if (!installed(repoRoot)) candidates.push(join(repoRoot, '..', 'shared', 'models', DEFAULT_MODEL));
  for (const dir of candidates) {
    if (await allFiles(dir)) return join(dir, DEFAULT_MODEL_FILES[0]!.name);
  }
  const fetchFn = opts.fetch ?? ((url: string) => globalThis.fetch(url));
  const stderr = opts.stderr ?? process.stderr;
  try {
    await mkdir(weightsDir, { recursive: true });
  } catch (e) {
    throw new KloopError(`${weightsDir}: cannot create the download folder (${(e as NodeJS.ErrnoException).code ?? String(e)}); set KLOOP_MODELS to a folder holding ${DEFAULT_MODEL}/ or pass --model`);
  }
  for (const f of DEFAULT_MODEL_FILES) {
    const dest = join(weightsDir, f.name);
    if (await isFile(dest)) continue;
    await download(`${HF_BASE}/${f.name}`, dest, f.sha256, fetchFn, stderr);
  }
  return join(weightsDir, DEFAULT_MODEL_FILES[0]!.name);
}

async function download(
  url: string,
  dest: string,
  sha256: string,
  fetchFn: (url: string) => Promise<Response>,
  stderr: { write(s: string): unknown; isTTY?: boolean },
): Promise<void> {
  const offline = (why: string) =>
    new KloopError(
      `cannot download the default model ${DEFAULT_MODEL} (${url}: ${why}); set KLOOP_MODELS to a folder holding ${DEFAULT_MODEL}/ or pass --model`,
    );
  let res: Response;
  try {
    res = await fetchFn(url);
  } catch (e) {
    throw offline(String((e as Error)?.message ?? e).replace(/[\r\n]+/g, ' '));
  }
  if (!res.ok || !res.body) throw offline(`HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const name = dest.split(/[\\/]/).pop()!;
  const chunks: Uint8Array[] = [];
  let got = 0;
  let lastDraw = 0;
  const draw = (final: boolean) => {
    if (stderr.isTTY) {
      const width = 30;
      const frac = total > 0 ? Math.min(1, got / total) : 0;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      const pct = total > 0 ? `${Math.floor(frac * 100)}%`.padStart(4) : '';
      stderr.write(`\rdownloading ${name} [${bar}] ${pct} ${(got / 1e6).toFixed(2)} MB${final ? '\n' : ''}`);
    } else if (final) {
      stderr.write(`downloaded ${name} (${got} bytes)\n`);
    }
  };
  if (!stderr.isTTY) stderr.write(`downloading ${url}\n`);
  try {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.length;
      if (got > 1 << 28) throw new Error('response larger than expected');
      const now = Date.now();
      if (now - lastDraw > 100) {
        lastDraw = now;
        draw(false);
      }
    }
  } catch (e) {
    throw offline(String((e as Error)?.message ?? e).replace(/[\r\n]+/g, ' '));
  }
  draw(true);
  const data = Buffer.concat(chunks);
  const hash = createHash('sha256').update(data).digest('hex');
  if (hash !== sha256) {
    throw new KloopError(`${url}: downloaded file has sha256 ${hash}, expected ${sha256}; not saved`);
  }
  const part = `${dest}.part`;
  try {
    await writeFile(part, data);
    await rename(part, dest);
  } catch (e) {
    await unlink(part).catch(() => {});
    throw new KloopError(`${dest}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

async function allFiles(dir: string): Promise<boolean> {
  for (const f of DEFAULT_MODEL_FILES) if (!(await isFile(join(dir, f.name)))) return false;
  return true;
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
