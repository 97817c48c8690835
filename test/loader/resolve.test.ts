import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { modelsDir } from '../helpers/paths.ts';
import { defaultModelsHome, resolveDefaultModel } from '../../src/loader/resolve.ts';
import { expectKloopError } from './helpers.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'kloop-resolve-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const quiet = { write: () => true, isTTY: false };
const noFetch = () => Promise.reject(new Error('network must not be used here'));

describe('resolveDefaultModel', () => {
  it('finds stories260K under $KLOOP_MODELS', async () => {
    const p = await resolveDefaultModel({ env: { KLOOP_MODELS: modelsDir }, repoRoot: path.join(tmp, 'none'), fetch: noFetch, stderr: quiet });
    expect(p).toBe(path.join(modelsDir, 'stories260K', 'stories260K.bin'));
  });

  it('finds stories260K under <repo>/weights', async () => {
    const repo = path.join(tmp, 'repo1');
    const w = path.join(repo, 'weights', 'stories260K');
    mkdirSync(w, { recursive: true });
    for (const f of ['stories260K.bin', 'tok512.bin']) copyFileSync(path.join(modelsDir, 'stories260K', f), path.join(w, f));
    const p = await resolveDefaultModel({ env: {}, repoRoot: repo, fetch: noFetch, stderr: quiet });
    expect(p).toBe(path.join(w, 'stories260K.bin'));
  });

  it('offline: says to set KLOOP_MODELS or pass --model', async () => {
    const repo = path.join(tmp, 'repo2');
    await expectKloopError(
      resolveDefaultModel({ env: { KLOOP_MODELS: path.join(tmp, 'empty') }, repoRoot: repo, fetch: () => Promise.reject(new TypeError('fetch failed')), stderr: quiet }),
      /cannot download the default model stories260K .*fetch failed.*set KLOOP_MODELS to a folder holding stories260K\/ or pass --model/,
    );
    await expectKloopError(
      resolveDefaultModel({ env: {}, repoRoot: repo, fetch: async () => new Response('nope', { status: 404 }), stderr: quiet }),
      /HTTP 404.*KLOOP_MODELS/,
    );
  });

  it('downloads with a progress bar and checks the sha256 (fetch injected, no network)', async () => {
    const repo = path.join(tmp, 'repo3');
    const urls: string[] = [];
    let out = '';
    const serve = (corrupt: boolean) => async (url: string) => {
      urls.push(url);
      const data = readFileSync(path.join(modelsDir, 'stories260K', url.split('/').pop()!));
      if (corrupt) data[100] ^= 1;
      return new Response(data, { headers: { 'content-length': String(data.length) } });
    };
    await expectKloopError(
      resolveDefaultModel({ env: {}, repoRoot: repo, fetch: serve(true), stderr: quiet }),
      /stories260K\.bin: downloaded file has sha256 [0-9a-f]{64}, expected b0a507e7/,
    );
    expect(existsSync(path.join(repo, 'weights/stories260K/stories260K.bin'))).toBe(false);
    const p = await resolveDefaultModel({ env: {}, repoRoot: repo, fetch: serve(false), stderr: { write: (s: string) => (out += s), isTTY: true } });
    expect(p).toBe(path.join(repo, 'weights/stories260K/stories260K.bin'));
    expect(urls.slice(-2)).toEqual([
      'https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/stories260K.bin',
      'https://huggingface.co/karpathy/tinyllamas/resolve/main/stories260K/tok512.bin',
    ]);
    expect(out).toMatch(/downloading stories260K\.bin \[#{30}\] 100%/);
    expect(readFileSync(p).equals(readFileSync(path.join(modelsDir, 'stories260K/stories260K.bin')))).toBe(true);
  });

  it('an installed package keeps the model in the user cache, not in node_modules', async () => {
    const pkg = path.join(tmp, 'app', 'node_modules', 'kloop');
    const cache = path.join(tmp, 'cache');
    expect(defaultModelsHome({ XDG_CACHE_HOME: cache }, pkg)).toBe(path.join(cache, 'kloop', 'models'));
    expect(defaultModelsHome({}, pkg)).toMatch(/[\\/]\.cache[\\/]kloop[\\/]models$/);
    expect(defaultModelsHome({ XDG_CACHE_HOME: cache }, path.join(tmp, 'checkout'))).toBe(path.join(tmp, 'checkout', 'weights'));
    // A shared models folder beside node_modules/kloop is not looked at; the download goes to the cache.
    const shared = path.join(tmp, 'app', 'node_modules', 'shared', 'models', 'stories260K');
    mkdirSync(shared, { recursive: true });
    for (const f of ['stories260K.bin', 'tok512.bin']) copyFileSync(path.join(modelsDir, 'stories260K', f), path.join(shared, f));
    const serve = async (url: string) => new Response(readFileSync(path.join(modelsDir, 'stories260K', url.split('/').pop()!)));
    const p = await resolveDefaultModel({ env: { XDG_CACHE_HOME: cache }, repoRoot: pkg, fetch: serve, stderr: quiet });
    expect(p).toBe(path.join(cache, 'kloop', 'models', 'stories260K', 'stories260K.bin'));
    expect(existsSync(path.join(pkg, 'weights'))).toBe(false);
    // Found there the next time, without the network.
    expect(await resolveDefaultModel({ env: { XDG_CACHE_HOME: cache }, repoRoot: pkg, fetch: noFetch, stderr: quiet })).toBe(p);
  });
});
