/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), then
 * `npm install ./kloop-<version>.tgz` into an empty folder (from the npm cache, or the registry
 * when the cache lacks a dependency). Plain `node` imports the library and generates; `npx kloop
 * generate` gives the same tokens; a TypeScript consumer type-checks against the shipped .d.ts;
 * node_modules stays small. KLOOP_SKIP_PACK=1 skips it (a machine without the npm cache or
 * registry).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir, repoRoot } from '../helpers/paths.ts';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

function run(cmd: string, args: string[], cwd: string, timeout = 180_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout, maxBuffer: 1 << 26, env: { ...process.env, KLOOP_MODELS: modelsDir, npm_config_audit: 'false', npm_config_fund: 'false' } }, (e, stdout, stderr) => {
      if (e) reject(new Error(`${cmd} ${args.join(' ')} failed (${e.message}):\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Bytes of the files under `dir` (apparent sizes; links not followed). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await treeBytes(p);
    else if (e.isFile()) total += (await stat(p)).size;
  }
  return total;
}

const MODEL = path.join(modelsDir, 'stories260K', 'stories260K.bin');
const PROMPT = 'Once upon a time';

describe.skipIf(process.env.KLOOP_SKIP_PACK === '1')('the packed package installed into an empty folder', () => {
  let tmp: string;
  let app: string;
  let tarball: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'kloop-pack-'));
    const { stdout } = await run(npm, ['pack', '--pack-destination', tmp, '--loglevel=error'], repoRoot);
    tarball = path.join(tmp, stdout.trim().split('\n').at(-1)!);
    app = path.join(tmp, 'app');
    await mkdir(app);
    await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    await run(npm, ['install', tarball, '--prefer-offline', '--loglevel=error'], app);
  }, 300_000);
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('ships the build, not the sources, tests or benchmarks; installs small, without tsx or node-llama-cpp', async () => {
    const tgz = (await stat(tarball)).size;
    const files = (await run('tar', ['tzf', tarball], tmp)).stdout.trim().split('\n');
    expect(files).toContain('package/dist/index.js');
    expect(files).toContain('package/dist/index.d.ts');
    expect(files).toContain('package/dist/server/http.js');
    expect(files).toContain('package/bin/kloop.mjs');
    expect(files.filter((f) => /^package\/(src|test|bench|scripts|weights)\//.test(f))).toEqual([]);
    const installed = await readdir(path.join(app, 'node_modules'));
    expect(installed).not.toContain('tsx');
    expect(installed).not.toContain('node-llama-cpp');
    expect(installed).not.toContain('typescript');
    const bytes = await treeBytes(path.join(app, 'node_modules'));
    console.log(`tarball ${(tgz / 1024).toFixed(1)} KiB (${files.length} files); node_modules ${(bytes / 2 ** 20).toFixed(1)} MiB`);
    expect(bytes).toBeLessThanOrEqual(160 * 2 ** 20);
  });

  it('plain node imports it and generates the tokens of npx kloop generate', async () => {
    const script = [
      "import { loadModel, createGenerator } from 'kloop';",
      `const model = await loadModel(${JSON.stringify(MODEL)});`,
      `const g = createGenerator(model, { prompt: ${JSON.stringify(PROMPT)}, mode: 'reference', maxTokens: 24 });`,
      'const tokens = []; for await (const t of g) tokens.push(t.id);',
      'console.log(JSON.stringify({ tokens, text: g.result().text }));',
    ].join('\n');
    await writeFile(path.join(app, 'gen.mjs'), script);
    const [lib, cli] = await Promise.all([
      run(process.execPath, ['gen.mjs'], app),
      run(npx, ['--no-install', 'kloop', 'generate', '--model', MODEL, '--mode', 'reference', '--prompt', PROMPT, '--max-tokens', '24', '--json'], app),
    ]);
    const a = JSON.parse(lib.stdout) as { tokens: number[]; text: string };
    const b = JSON.parse(cli.stdout) as { tokens: number[]; text: string };
    expect(a.tokens).toHaveLength(24);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.text).toBe(b.text);
    const help = await run(npx, ['--no-install', 'kloop', 'serve', '--help'], app);
    expect(help.stdout).toMatch(/^usage: kloop serve/);
  });

  it('a TypeScript consumer type-checks against the shipped .d.ts (and a wrong use fails)', async () => {
    const good = [
      "import { loadModel, createGenerator, KloopError, type LoadedModel, type GeneratedToken } from 'kloop';",
      "const model: LoadedModel = await loadModel('model.bin');",
      "for await (const t of createGenerator(model, { prompt: 'hi', mode: 'reference', maxTokens: 4 })) {",
      '  const tok: GeneratedToken = t;',
      '  console.log(tok.text, tok.id + 1);',
      '}',
      "export const e = new KloopError('x');",
    ].join('\n');
    const bad = ["import { loadModel } from 'kloop';", "const n: number = (await loadModel('model.bin')).name;", 'export { n };'].join('\n');
    await writeFile(path.join(app, 'good.ts'), good);
    await writeFile(path.join(app, 'bad.ts'), bad);
    const tsconfig = (file: string) => ({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
      },
      files: [file],
    });
    await writeFile(path.join(app, 'tsconfig.good.json'), JSON.stringify(tsconfig('good.ts')));
    await writeFile(path.join(app, 'tsconfig.bad.json'), JSON.stringify(tsconfig('bad.ts')));
    const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');
    await run(tsc, ['-p', 'tsconfig.good.json'], app);
    await expect(run(tsc, ['-p', 'tsconfig.bad.json'], app)).rejects.toThrow(/TS2322/);
  });
});
