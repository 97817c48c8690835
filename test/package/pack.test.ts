/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepare`), then
 * `npm install ./kloop-<version>.tgz` into an empty folder (from the npm cache, or the registry
 * when the cache lacks a dependency). Plain `node` imports the library and generates; `npx kloop
 * generate` gives the same tokens; a TypeScript consumer type-checks against the shipped .d.ts;
 * node_modules stays small. KLOOP_SKIP_PACK=1 skips it (a machine without the npm cache or
 * registry).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
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
    // The demo page's prebuilt bundles (an installed package has no sources to bundle) and the license.
    for (const f of ['web/index.html', 'web/dist/kloop.js', 'web/dist/app.js', 'LICENSE']) expect(files).toContain(`package/${f}`);
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

  it('a browser bundler takes kloop and kloop/browser as they are (no externals, no Node module reached)', async () => {
    await writeFile(path.join(app, 'page.mjs'), "import { loadModel, createGenerator } from 'kloop';\nimport { openSession } from 'kloop/browser';\nconsole.log(loadModel, createGenerator, openSession);\n");
    const esbuild = path.join(repoRoot, 'node_modules', '.bin', 'esbuild');
    await run(esbuild, ['page.mjs', '--bundle', '--platform=browser', '--format=esm', '--outfile=page.bundle.js', '--log-level=error'], app);
    const text = await readFile(path.join(app, 'page.bundle.js'), 'utf8');
    expect(text).toContain('navigator');
    expect(text).not.toMatch(/^\s*import\s[^;]*from\s*["'](node:[^"']+|webgpu)["']/m);
  });

  it('kloop demo serves the page and its prebuilt bundles, with no bundler installed', async () => {
    expect((await run(npx, ['--no-install', 'kloop', 'demo', '--help'], app)).stdout).toMatch(/^usage: kloop demo/);
    const bin = path.join(app, 'node_modules', 'kloop', 'bin', 'kloop.mjs');
    const child = spawn(process.execPath, [bin, 'demo', '--port', '0', '--models', modelsDir], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d));
      const url = await new Promise<string>((ok, fail) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d;
          const m = /serving (http:\/\/\S+)/.exec(out);
          if (m) ok(m[1]!.replace(/\/$/, ''));
        });
        child.on('exit', (code) => fail(new Error(`kloop demo exited (${code}): ${out}${err}`)));
      });
      for (const p of ['/', '/dist/kloop.js', '/dist/app.js']) {
        const r = await fetch(url + p);
        expect(r.status, p).toBe(200);
        expect((await r.text()).length, p).toBeGreaterThan(100);
      }
      const models = (await (await fetch(url + '/models/')).json()) as { models: { name: string }[] };
      expect(models.models.map((m) => m.name)).toContain('stories260K');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('a TypeScript consumer type-checks against the shipped .d.ts (and a wrong use fails)', async () => {
    const good = [
      "import { openSession, loadModel, createGenerator, KloopError, type LoadedModel, type GeneratedToken } from 'kloop';",
      "const model: LoadedModel = await loadModel('model.bin');",
      "for await (const t of createGenerator(model, { prompt: 'hi', mode: 'reference', maxTokens: 4 })) {",
      '  const tok: GeneratedToken = t;',
      '  console.log(tok.text, tok.id + 1);',
      '}',
      "export const e = new KloopError('x');",
      // WebGPU's types come with the package (no DOM lib here).
      "const device: GPUDevice = (await openSession(model).device()).device;",
      'export const limit: number = device.limits.maxBufferSize;',
    ].join('\n');
    const bad = ["import { loadModel } from 'kloop';", "const n: number = (await loadModel('model.bin')).name;", 'export { n };'].join('\n');
    // A member WebGPU does not have is an error, not an `any`.
    const badGpu = ["import { loadModel, openSession } from 'kloop';", "const s = openSession(await loadModel('model.bin'));", 'export const x = (await s.device()).device.noSuchMember;'].join('\n');
    // A browser bundler (the "browser" condition) gets the browser entry's types: no Node-only exports.
    const browser = ["import { loadModel, convertToHF } from 'kloop';", 'export { loadModel, convertToHF };'].join('\n');
    for (const [name, text] of Object.entries({ good, bad, badGpu, browser })) await writeFile(path.join(app, `${name}.ts`), text);
    const tsconfig = (file: string, bundler = false) => ({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2022', 'DOM'],
        ...(bundler ? { module: 'ESNext', moduleResolution: 'Bundler', customConditions: ['browser'] } : { module: 'NodeNext', moduleResolution: 'NodeNext' }),
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [path.join(repoRoot, 'node_modules', '@types')],
      },
      files: [file],
    });
    for (const name of ['good', 'bad', 'badGpu']) await writeFile(path.join(app, `tsconfig.${name}.json`), JSON.stringify(tsconfig(`${name}.ts`)));
    await writeFile(path.join(app, 'tsconfig.bundler.json'), JSON.stringify(tsconfig('good.ts', true)));
    await writeFile(path.join(app, 'tsconfig.browser.json'), JSON.stringify(tsconfig('browser.ts', true)));
    const tsc = path.join(repoRoot, 'node_modules', '.bin', 'tsc');
    await run(tsc, ['-p', 'tsconfig.good.json'], app);
    await run(tsc, ['-p', 'tsconfig.bundler.json'], app);
    await expect(run(tsc, ['-p', 'tsconfig.bad.json'], app)).rejects.toThrow(/TS2322/);
    await expect(run(tsc, ['-p', 'tsconfig.badGpu.json'], app)).rejects.toThrow(/TS2339[^\n]*noSuchMember/);
    await expect(run(tsc, ['-p', 'tsconfig.browser.json'], app)).rejects.toThrow(/TS2305[^\n]*convertToHF|TS2724[^\n]*convertToHF/);
  });
});
