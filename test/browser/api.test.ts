/**
 * The browser API without a browser: loading from bytes, URLs and paths (Node entry) agrees with
 * the path loader; the token stream builds its own executor; the bundle keeps Node modules out;
 * the demo server lists and serves models on loopback only.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWeb, checkNoStaticNodeImports } from '../../src/browser/build.ts';
import { checkWebGPU, createGenerator, detectBytesFormat, loadModel as loadBrowser } from '../../src/browser/index.ts';
import type { LoadProblem } from '../../src/browser/load.ts';
import { loadMessage, pairFiles } from '../../src/browser/pick.ts';
import { type DemoServer, startDemoServer } from '../../src/browser/serve.ts';
import { parseDemoFlags } from '../../src/cli/demo.ts';
import { KloopError } from '../../src/errors.ts';
import { loadModel as loadNode } from '../../src/index.ts';
import { loadModel as loadPath } from '../../src/loader/index.ts';
import type { LoadedModel } from '../../src/loader/types.ts';
import { fixturesDir, modelsDir } from '../helpers/paths.ts';

const dir = join(modelsDir, 'stories260K');
const binPath = join(dir, 'stories260K.bin');
const tokPath = join(dir, 'tok512.bin');
const ggufPath = join(dir, 'stories260K.gguf');
const spmPath = join(dir, 'tok512.model');
const bytes = async (p: string): Promise<ArrayBuffer> => {
  const b = await readFile(p);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};

function expectSameModel(a: LoadedModel, b: LoadedModel): void {
  expect(a.config).toEqual(b.config);
  expect(a.format).toBe(b.format);
  expect(a.weights.tokEmb).toEqual(b.weights.tokEmb);
  expect(a.weights.layers[a.config.nLayers - 1]!.w2).toEqual(b.weights.layers[b.config.nLayers - 1]!.w2);
  expect(a.weights.finalNorm).toEqual(b.weights.finalNorm);
  const text = 'Once upon a time, Lily saw a big dog.';
  expect(a.tokenizer.encode(text)).toEqual(b.tokenizer.encode(text));
}

describe('loadModel from bytes', () => {
  it('reads a llama2.c checkpoint and its tokenizer from ArrayBuffers, as the path loader does', async () => {
    const m = await loadBrowser({ model: await bytes(binPath), tokenizer: await bytes(tokPath), name: 'stories260K' });
    expectSameModel(m, await loadPath(binPath));
    expect(m.name).toBe('stories260K');
  });

  it('reads a GGUF from a typed array and a Blob', async () => {
    const ref = await loadPath(ggufPath);
    expectSameModel(await loadBrowser(new Uint8Array(await bytes(ggufPath))), ref);
    const blob = new Blob([await bytes(ggufPath)]);
    expectSameModel(await loadBrowser(blob), ref);
  });

  it('detects formats by their first bytes', async () => {
    expect(detectBytesFormat(new Uint8Array(await bytes(ggufPath)))).toBe('gguf');
    expect(detectBytesFormat(new Uint8Array(await bytes(binPath)))).toBe('llama2c');
    expect(detectBytesFormat(new TextEncoder().encode('  {"model": {}}'))).toBe('json');
  });

  it('says what is missing or unsupported, in one line', async () => {
    await expect(loadBrowser(await bytes(binPath))).rejects.toThrow(/needs its tokenizer/);
    await expect(loadBrowser(new TextEncoder().encode('{"architectures": []}'))).rejects.toThrow(/Hugging Face .* Node only/);
    await expect(loadBrowser({ model: new Uint8Array(100), tokenizer: await bytes(tokPath) })).rejects.toThrow(KloopError);
    await expect(loadBrowser('relative/path.bin')).rejects.toThrow(/not a URL/);
  });

  /** The `problem` of the LoadError a load rejects with. */
  const problem = (p: Promise<unknown>): Promise<LoadProblem | undefined> =>
    p.then(
      () => undefined,
      (e: { problem?: LoadProblem }) => e.problem,
    );

  it('names the kind of mistake (LoadError.problem) and says what a file is instead', async () => {
    await expect(loadBrowser(await bytes(binPath))).rejects.toMatchObject({ problem: 'needs-tokenizer' });
    await expect(loadBrowser(await bytes(tokPath))).rejects.toThrow(/^ArrayBuffer: a llama2.c tokenizer, not a model/);
    expect(await problem(loadBrowser(await bytes(tokPath)))).toBe('tokenizer-not-model');
    expect(await problem(loadBrowser(new Uint8Array(0)))).toBe('empty');
    expect(await problem(loadBrowser(await bytes(spmPath)))).toBe('sentencepiece');
    expect(await problem(loadBrowser({ model: await bytes(binPath), tokenizer: await bytes(spmPath) }))).toBe('sentencepiece');
    expect(await problem(loadBrowser({ model: await bytes(binPath), tokenizer: await bytes(binPath) }))).toBe('not-a-tokenizer');
    expect(await problem(loadBrowser(new TextEncoder().encode('some notes, not a model at all')))).toBe('not-a-model');
  });

  it('stops a download that never answers when its signal is aborted', async () => {
    const abort = new AbortController();
    let asked = 0;
    // A fetch that ignores the signal and never answers: the load still stops.
    const fetch = () => {
      asked++;
      return new Promise<Response>(() => undefined);
    };
    const load = loadBrowser({ model: 'http://127.0.0.1:9/never.bin', tokenizer: 'http://127.0.0.1:9/tok.bin' }, { fetch, signal: abort.signal });
    setTimeout(() => abort.abort(), 20);
    await expect(load).rejects.toMatchObject({ problem: 'stopped', message: 'http://127.0.0.1:9/never.bin: download stopped' });
    expect(asked).toBe(1);
    await expect(loadBrowser(await bytes(binPath), { signal: abort.signal })).rejects.toMatchObject({ problem: 'stopped' });
  });
});

describe('the page: local files paired by content, and load errors in its words', () => {
  const file = async (name: string, path?: string) => new File(path ? [await readFile(path)] : [], name);

  it('takes the model and the tokenizer by what they hold, not by their names', async () => {
    const p = await pairFiles([await file('vocab512.bin', tokPath), await file('stories260K.bin', binPath)]);
    expect([p.model.name, p.tokenizer?.name, p.ignored]).toEqual(['stories260K.bin', 'vocab512.bin', []]);
    const g = await pairFiles([await file('tok512.bin', tokPath), await file('model.gguf', ggufPath)]);
    expect([g.model.name, g.tokenizer, g.ignored.map((x) => x.why)]).toEqual(['model.gguf', undefined, ['a GGUF file holds its own tokenizer']]);
    const m = await loadBrowser({ model: p.model, tokenizer: p.tokenizer });
    expectSameModel(m, await loadPath(binPath));
  });

  it('says what to drop when the files make no model', async () => {
    const fails = (files: File[]) => pairFiles(files).then(() => '', (e: Error) => e.message);
    expect(await fails([await file('tok512.bin', tokPath)])).toMatch(/^tok512\.bin is a tokenizer, not a model: drop the model file/);
    expect(await fails([await file('stories260K.bin', binPath)])).toMatch(/^stories260K\.bin is a llama2\.c checkpoint: drop the tokenizer file \(tok\*\.bin or tokenizer\.json\)/);
    expect(await fails([await file('tok512.model', spmPath), await file('stories260K.bin', binPath)])).toMatch(/^tok512\.model is a sentencepiece tokenizer\.model, which this page cannot read/);
    expect(await fails([await file('empty.gguf')])).toMatch(/^empty\.gguf is empty \(0 bytes\)/);
    expect(await fails([new File(['just some notes'], 'notes.txt')])).toMatch(/^notes\.txt: not a model file/);
    expect(await fails([await file('a.gguf', ggufPath), await file('b.gguf', ggufPath)])).toMatch(/several models/);
  });

  it('words load errors for the tab they came from', async () => {
    const needsTokenizer = await loadBrowser(new Uint8Array(await bytes(binPath))).catch((e: Error) => e);
    expect(loadMessage(needsTokenizer, 'url')).toBe('bytes is a llama2.c checkpoint: fill in Tokenizer URL with its tokenizer (tok*.bin or tokenizer.json)');
    expect(loadMessage(needsTokenizer, 'files')).toBe('bytes is a llama2.c checkpoint: drop the tokenizer file (tok*.bin or tokenizer.json) together with the .bin');
    const notModel = await loadBrowser(await bytes(tokPath)).catch((e: Error) => e);
    expect(loadMessage(notModel, 'url')).toMatch(/^ArrayBuffer is a tokenizer, not a model: put it in Tokenizer URL/);
    expect(loadMessage(new Error('plain'), 'url')).toBe('plain');
  });
});

describe('the WebGPU check', () => {
  it('asks for the 8 storage buffers per shader stage the executor needs', async () => {
    const adapter = (storage: number) => ({
      info: { vendor: 'v', architecture: 'a', description: 'd', device: '' },
      features: new Set<string>(),
      limits: { maxStorageBuffersPerShaderStage: storage, maxComputeInvocationsPerWorkgroup: 256 },
    });
    const gpu = (storage: number) => ({ requestAdapter: async () => adapter(storage) }) as unknown as GPU;
    expect((await checkWebGPU(gpu(8))).problems).toEqual([]);
    expect((await checkWebGPU(gpu(7))).problems).toEqual(['This adapter binds at most 7 storage buffers per shader stage; the kernels need 8.']);
  });
});

describe('the Node entry', () => {
  it('loads paths, file URLs and mixed sources', async () => {
    const ref = await loadPath(binPath);
    expectSameModel(await loadNode(binPath), ref);
    expectSameModel(await loadNode(new URL(`file://${binPath}`)), ref);
    expectSameModel(await loadNode({ model: binPath, tokenizer: await bytes(tokPath) }), ref);
    expectSameModel(await loadNode({ model: await bytes(binPath), tokenizer: tokPath }), ref);
  });

  it('streams the fixture tokens through createGenerator(model, options), building the executor itself', async () => {
    const fixture = JSON.parse(await readFile(join(fixturesDir, 'stories260K', 'bos_only.json'), 'utf8')) as { tokens: number[] };
    const model = await loadNode(binPath);
    const g = createGenerator(model, { mode: 'reference', prompt: '', maxTokens: 16, ignoreEos: true });
    const ids: number[] = [];
    for await (const t of g) ids.push(t.id);
    expect(ids).toEqual(fixture.tokens.slice(1, 17));
    expect(g.result().tokens).toEqual(ids);
    expect(g.executor?.mode).toBe('reference');
    expect(() => createGenerator(model, { maxTokens: -1 })).toThrow(KloopError);
  });
});

describe('the browser bundle', () => {
  it('builds, with no static import of a Node module and the loaders free of node:fs', async () => {
    const files = await buildWeb({ write: false });
    const names = files.map((f) => f.name).sort();
    expect(names).toEqual(expect.arrayContaining(['kloop.js', 'app.js']));
    const lib = new TextDecoder().decode(files.find((f) => f.name === 'kloop.js')!.contents);
    expect(lib).not.toContain('node:fs/promises');
    expect(lib).not.toContain('node:path');
    expect(lib).toMatch(/export\s*\{[^}]*\bloadModel\b/);
    const app = new TextDecoder().decode(files.find((f) => f.name === 'app.js')!.contents);
    expect(app).toContain('from "./kloop.js"');
    expect(() => checkNoStaticNodeImports([{ name: 'x.js', contents: new TextEncoder().encode('import { readFile } from "node:fs/promises";\n') }])).toThrow(
      /static import of node:fs\/promises/,
    );
  });
});

describe('the demo server', () => {
  let server: DemoServer;
  beforeAll(async () => {
    server = await startDemoServer({ port: 0, modelsDir });
  });
  afterAll(async () => {
    await server?.close();
  });

  const get = (path: string, host = `127.0.0.1:${server.port}`): Promise<{ status: number; body: Buffer; type?: string }> =>
    new Promise((ok, fail) => {
      const req = request({ host: '127.0.0.1', port: server.port, path, headers: { host } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), type: res.headers['content-type'] }));
      });
      req.on('error', fail);
      req.end();
    });

  it('serves the page, the bundles and the model list', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.body.toString()).toContain('dist/app.js');
    expect((await get('/dist/kloop.js')).type).toMatch(/javascript/);
    const list = JSON.parse((await get('/models/')).body.toString()) as { models: { name: string; model: string; tokenizer?: string }[] };
    expect(list.models).toContainEqual(
      expect.objectContaining({ name: 'stories260K', model: '/models/stories260K/stories260K.bin', tokenizer: '/models/stories260K/tok512.bin' }),
    );
    expect(list.models.some((m) => m.model.endsWith('.gguf'))).toBe(true);
    expect(list.models.some((m) => /tok512/.test(m.model))).toBe(false);
  });

  it('serves model files that load through a URL', async () => {
    const m = await loadBrowser({ model: `${server.url}models/stories260K/stories260K.bin`, tokenizer: `${server.url}models/stories260K/tok512.bin` });
    expectSameModel(m, await loadPath(binPath));
    expect(m.name).toBe('stories260K');
    await expect(loadBrowser(`${server.url}models/stories260K/missing.gguf`)).rejects.toThrow(/HTTP 404/);
  });

  it('refuses paths outside the models folder and foreign Host headers', async () => {
    for (const path of ['/models/../package.json', '/models/%2e%2e/%2e%2e/package.json', '/models/..%2f..%2fpackage.json', '/../package.json', '/dist/../../package.json']) {
      expect((await get(path)).status, path).toBeGreaterThanOrEqual(400);
    }
    expect((await get('/', 'example.com')).status).toBe(403);
  });

  it('parses its flags', () => {
    expect(parseDemoFlags([])).toEqual({ port: 8080, modelsDir: undefined, help: false });
    expect(parseDemoFlags(['--port', '0']).port).toBe(0);
    expect(() => parseDemoFlags(['--port', 'x'])).toThrow(/--port/);
    expect(() => parseDemoFlags(['--port', '70000'])).toThrow(/--port/);
    expect(() => parseDemoFlags(['--bogus'])).toThrow(KloopError);
  });
});
