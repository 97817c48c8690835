/**
 * The demo page's controls when things go wrong, in headless Chromium (WebGPU on SwiftShader):
 * Stop ends a download that never answers and the loaded model stays; invalid number fields say
 * so under the field and start nothing; a prompt past the context is refused before any kernel
 * is built; local files are paired by content, and the wrong ones get messages that say what to
 * drop; a failed load leaves no stale state; files chosen during a run load after it; Stop during
 * a kernel build stops before generating; a stopped benchmark says so and leaves no placeholder.
 */
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/browser/app.ts';
import { modelsDir } from '../helpers/paths.ts';
import { type DemoBrowser, launchDemo, openPage, servedOption } from './chromium.ts';

/** Each step waits at most this long (a first kernel build on SwiftShader takes seconds). */
const STEP = 120_000;
const TEST = 4 * STEP;

const stories = (f: string) => join(modelsDir, 'stories260K', f);
type FileArg = { name: string; mimeType: string; buffer: Buffer };
const file = async (name: string, path?: string): Promise<FileArg> => ({
  name, mimeType: 'application/octet-stream', buffer: path ? await readFile(path) : Buffer.alloc(0),
});

describe('the demo page when things go wrong (headless Chromium, WebGPU on SwiftShader)', () => {
  let browser: DemoBrowser;
  let page: Page;
  /** A server that accepts requests and never answers them. */
  let silent: Server;
  const silentRequests: IncomingMessage[] = [];

  beforeAll(async () => {
    silent = createServer((req) => void silentRequests.push(req));
    await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', ok));
    browser = await launchDemo('page');
    page = browser.page;
    await openPage(browser);
  });

  afterAll(async () => {
    await browser?.close();
    silent?.closeAllConnections();
    await new Promise((ok) => silent?.close(ok));
  });

  const idle = () => page.waitForFunction(() => document.body.dataset.busy === '0' && !window.kloop.busy, undefined, { timeout: STEP, polling: 100 });
  const buttons = () => page.$$eval('#load, #generate, #bench, #stop', (bs) => Object.fromEntries(bs.map((b) => [b.id, (b as HTMLButtonElement).disabled])));
  const text = async (sel: string) => ((await page.textContent(sel)) ?? '').trim();
  const lastError = () => page.evaluate(() => window.kloop.errors.at(-1) ?? '');
  const modelName = () => page.evaluate(() => ({ hook: window.kloop.model?.name, body: document.body.dataset.model }));
  const barWidth = () => page.$eval('#load-bar', (b) => (b as HTMLElement).style.width);
  const errorsShown = () => page.$eval('#errors', (b) => !(b as HTMLElement).hidden);

  async function loadServed(prefix: string, name: string): Promise<void> {
    await page.click('.tab[data-tab="served"]');
    const option = await servedOption(page, prefix);
    expect(option, `${prefix} in the served list`).toBeDefined();
    await page.selectOption('#served', option!);
    await page.click('#load');
    await page.waitForFunction((n) => document.body.dataset.model === n && document.body.dataset.busy === '0', name, { timeout: STEP });
  }

  /** Clicks Generate and waits for the run to end. */
  async function generate(mode: 'looped' | 'per-layer' | 'per-op', maxTokens: string): Promise<RunRecord> {
    await page.selectOption('#mode', mode);
    await page.fill('#max-tokens', maxTokens);
    const before = await page.evaluate(() => window.kloop.runs.length);
    await page.click('#generate');
    await page.waitForFunction((n) => window.kloop.runs[n]?.done === true, before, { timeout: STEP, polling: 100 });
    await idle();
    return page.evaluate((n) => window.kloop.runs[n]!, before);
  }

  it(
    'stops a download that never answers, re-enables the page and keeps the loaded model',
    async () => {
      await loadServed('stories260K · llama2c', 'stories260K');
      expect(await barWidth()).toBe('100%');
      const errors = await page.evaluate(() => window.kloop.errors.length);

      await page.click('.tab[data-tab="url"]');
      const port = (silent.address() as AddressInfo).port;
      await page.fill('#model-url', `http://127.0.0.1:${port}/never.bin`);
      await page.fill('#tok-url', `http://127.0.0.1:${port}/never-tok.bin`);
      await page.click('#load');
      await expect.poll(() => silentRequests.length, { timeout: 10_000 }).toBeGreaterThan(0);
      expect(await buttons()).toEqual({ load: true, generate: true, bench: true, stop: false });
      await page.click('#stop');
      await idle();
      expect(await buttons()).toEqual({ load: false, generate: false, bench: false, stop: true });
      expect(await text('#load-status')).toBe('stopped; stories260K is still loaded');
      expect(await modelName()).toEqual({ hook: 'stories260K', body: 'stories260K' });
      expect(await barWidth()).toBe('0%');
      expect(await page.evaluate(() => window.kloop.errors.length)).toBe(errors);
      // The page aborted the request: the server sees its connection closed.
      await expect.poll(() => silentRequests[0]!.socket.destroyed, { timeout: 10_000 }).toBe(true);

      // The old model still generates (the Served tab selects it: nothing is loaded again).
      await page.click('.tab[data-tab="served"]');
      const run = await generate('looped', '4');
      expect(run.error).toBeUndefined();
      expect(run.tokens).toHaveLength(4);
      expect(await text('#gen-status')).toMatch(/^4 tokens, [\d.,]+ tokens\/s \(max tokens\)$/);
      expect(run.prefillMs).toBeGreaterThan(0);
    },
    TEST,
  );

  it(
    'checks the number fields before starting: a message under the field, nothing started; empty means the default',
    async () => {
      const runs = await page.evaluate(() => window.kloop.runs.length);
      for (const [value, why] of [['0', /^0 is too small: enter a whole number of at least 1, or leave it empty for 256$/], ['-3', /too small/], ['2.5', /not a whole number/]] as const) {
        await page.fill('#max-tokens', value);
        await page.click('#generate');
        expect(await text('#max-tokens-msg')).toMatch(why);
        expect(await page.getAttribute('#max-tokens', 'aria-invalid')).toBe('true');
        expect(await text('#gen-status')).toBe('not started: check the fields marked in red');
      }
      await page.fill('#max-tokens', '4');
      expect(await page.isHidden('#max-tokens-msg')).toBe(true);
      await page.fill('#temperature', '-1');
      await page.click('#generate');
      expect(await text('#temperature-msg')).toMatch(/^-1 is too small: enter a number of at least 0/);
      await page.fill('#temperature', '');
      await page.fill('#bench-tokens', '2');
      await page.click('#bench');
      expect(await text('#bench-tokens-msg')).toMatch(/too small/);
      expect(await page.evaluate(() => window.kloop.lastBench)).toBeUndefined();
      await page.fill('#bench-tokens', '');
      expect(await page.evaluate(() => window.kloop.runs.length)).toBe(runs);
      expect(await page.evaluate(() => window.kloop.busy)).toBe(false);

      // Placeholders name the defaults; max tokens past the context is capped, and the page says so.
      expect(await page.getAttribute('#max-tokens', 'placeholder')).toBe('256');
      expect(await page.getAttribute('#temperature', 'placeholder')).toBe('0 (greedy)');
      const run = await generate('looped', '1000000000');
      expect(run.error).toBeUndefined();
      expect(run.stoppedAt).toMatch(/eos|context/);
      expect(await text('#max-tokens-msg')).toMatch(/^1000000000 is more than the context \(512 positions, 1 prompt token\) allows: 511 used$/);

      // A prompt past the context is refused before any kernel is built (per-op has not run yet).
      await page.fill('#prompt', 'Once upon a time '.repeat(200));
      const long = await generate('per-op', '4');
      expect(long.error).toMatch(/^prompt: \d+ tokens do not fit the context of 512/);
      expect(long.buildSeconds).toBe(0);
      expect(await text('#build')).toBe('–');
      await page.fill('#prompt', '');
    },
    TEST,
  );

  it(
    'pairs local files by content, says what to drop, and leaves no stale state after a failed load',
    async () => {
      const tok = await file('tok512.bin', stories('tok512.bin'));
      const bin = await file('stories260K.bin', stories('stories260K.bin'));
      const dropFiles = async (files: FileArg[]) => {
        const errors = await page.evaluate(() => window.kloop.errors.length);
        await page.setInputFiles('#files', files);
        await page.waitForFunction((n) => window.kloop.errors.length > n || document.body.dataset.busy === '0', errors, { timeout: STEP });
        await idle();
        return (await page.evaluate(() => window.kloop.errors.length)) > errors ? lastError() : '';
      };
      await page.click('.tab[data-tab="files"]');

      // The tokenizer alone: a failed load; the loaded model stays, the bar is empty.
      expect(await dropFiles([tok])).toBe('tok512.bin is a tokenizer, not a model: drop the model file (a llama2.c .bin such as stories260K.bin) together with it');
      expect(await errorsShown()).toBe(true);
      expect(await modelName()).toEqual({ hook: 'stories260K', body: 'stories260K' });
      expect(await barWidth()).toBe('0%');
      expect(await text('#load-status')).toBe('failed; stories260K is still loaded');

      expect(await dropFiles([bin])).toBe('stories260K.bin is a llama2.c checkpoint: drop the tokenizer file (tok*.bin or tokenizer.json) together with the .bin');
      expect(await dropFiles([await file('empty.gguf')])).toMatch(/^empty\.gguf is empty \(0 bytes\)/);
      expect(await dropFiles([{ ...(await file('notes.txt')), buffer: Buffer.from('some notes\n') }])).toMatch(/^notes\.txt: not a model file/);
      expect(await dropFiles([await file('tok512.model', stories('tok512.model')), bin])).toBe(
        'tok512.model is a sentencepiece tokenizer.model, which this page cannot read: drop the llama2.c tokenizer (tok*.bin) or a tokenizer.json together with stories260K.bin',
      );

      // A tokenizer with another name is still the tokenizer; the error box goes with the success.
      expect(await dropFiles([{ ...tok, name: 'vocab512.bin' }, bin])).toBe('');
      expect(await errorsShown()).toBe(false);
      expect(await modelName()).toEqual({ hook: 'stories260K', body: 'stories260K' });
      expect(await barWidth()).toBe('100%');
      expect(await text('#files-chosen')).toMatch(/→ model stories260K\.bin, tokenizer vocab512\.bin$/);
      expect(await text('#model-info')).toMatch(/5 layers/);
    },
    TEST,
  );

  it(
    'stops during a kernel build before generating, then loads the files chosen meanwhile',
    async () => {
      await page.fill('#prompt', 'Once upon a time');
      await page.selectOption('#mode', 'per-layer');
      // Long enough that Stop lands in the run even if the build were over before it.
      await page.fill('#max-tokens', '500');
      await page.setChecked('#stop-eos', false);
      const n = await page.evaluate(() => window.kloop.runs.length);
      await page.click('#generate');
      await page.waitForFunction(() => /compiling the per-layer kernels/.test(document.getElementById('gen-status')!.textContent!), undefined, { timeout: STEP });
      // Files chosen during the run wait for it.
      await page.setInputFiles('#files', [await file('stories260K-Q4_0.gguf', join(modelsDir, 'quant', 'stories260K-Q4_0.gguf'))]);
      expect(await text('#files-chosen')).toMatch(/these load when the current action ends/);
      await page.click('#stop');
      const stopping = await text('#gen-status');
      browser.log(`after Stop: ${stopping}`);
      expect(stopping).toMatch(/^stopping/);
      await page.waitForFunction((i) => window.kloop.runs[i]?.done === true, n, { timeout: STEP, polling: 100 });
      const run = await page.evaluate((i) => window.kloop.runs[i]!, n);
      expect(run.stoppedAt).toBe('stopped');
      if (stopping.startsWith('stopping after the kernels are built')) {
        expect(run.tokens).toEqual([]);
        expect(await text('#gen-status')).toMatch(/^stopped before generating/);
      }
      await page.waitForFunction(() => document.body.dataset.model === 'stories260K-Q4_0' && document.body.dataset.busy === '0', undefined, { timeout: STEP });
      expect(browser.pageErrors).toEqual([]);
    },
    TEST,
  );

  it(
    'says "stopped" when the benchmark is stopped and leaves no placeholder in the chart',
    async () => {
      await page.fill('#bench-tokens', '8');
      await page.click('#bench');
      await page.waitForFunction(() => window.kloop.busy, undefined, { timeout: STEP });
      await page.click('#stop');
      await page.waitForFunction(() => window.kloop.lastBench?.done === true, undefined, { timeout: STEP, polling: 100 });
      await idle();
      expect(await page.evaluate(() => window.kloop.lastBench!.stopped)).toBe(true);
      expect(await text('#bench-status')).toMatch(/^stopped/);
      const chart = await text('#chart');
      expect(chart).not.toMatch(/waiting|decoding|building|warming/);
      expect(chart).toMatch(/stopped|not run/);
    },
    TEST,
  );
});
