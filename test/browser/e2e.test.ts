/**
 * End to end: the demo server (port 0) and the demo page in Debian's headless Chromium, WebGPU on
 * SwiftShader, driven through the page's own controls: load stories260K (bin + tok512.bin) from
 * the server, generate 32 greedy tokens in the looped mode and compare them with the fixture,
 * then in the per-layer mode and compare with the looped tokens; `kloop generate` and the library
 * API in Node must give the same tokens with the same defaults. The page is saved as
 * test-artifacts/browser-e2e.png.
 *
 * Chromium: /usr/bin/chromium (Debian's package), or $KLOOP_CHROMIUM; no browser is downloaded.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DemoServer } from '../../src/browser/serve.ts';
import { main } from '../../src/cli/main.ts';
import { DEFAULTS } from '../../src/engine/session.ts';
import { createGenerator, loadModel as loadNodeModel } from '../../src/index.ts';
import type { RunRecord } from '../../src/browser/app.ts';
import { fixturesDir, modelsDir, repoRoot } from '../helpers/paths.ts';
import { type DemoBrowser, launchDemo, openPage, servedOption } from './chromium.ts';

const TOKENS = 32;
/** SwiftShader JIT-compiles the fused kernels on first use: tens of seconds on a small machine. */
const STEP_TIMEOUT = 300_000;
const SCREENSHOT = join(repoRoot, 'test-artifacts', 'browser-e2e.png');

interface Fixture {
  prompt_tokens: number[];
  tokens: number[];
}

describe('demo page in headless Chromium (WebGPU on SwiftShader)', () => {
  let browser: DemoBrowser;
  let server: DemoServer;
  let page: Page;
  let pageErrors: string[];
  let log: (s: string) => void;

  beforeAll(async () => {
    browser = await launchDemo('e2e');
    ({ server, page, pageErrors, log } = browser);
  });

  afterAll(async () => {
    await browser?.close();
  });

  /** Clicks Generate with the current settings and waits for the run to finish. */
  async function generate(mode: 'looped' | 'per-layer'): Promise<RunRecord> {
    await page.selectOption('#mode', mode);
    await page.fill('#max-tokens', String(TOKENS));
    const before = await page.evaluate(() => window.kloop.runs.length);
    const started = performance.now();
    await page.click('#generate');
    await page.waitForFunction((n) => window.kloop.runs.length > n && window.kloop.runs[n]!.done, before, { timeout: STEP_TIMEOUT, polling: 250 });
    const run = await page.evaluate((n) => window.kloop.runs[n]!, before);
    log(
      `${mode}: ${run.tokens.length} tokens in ${((performance.now() - started) / 1000).toFixed(1)} s ` +
        `(kernel build ${run.buildSeconds.toFixed(1)} s, prefill ${run.prefillMs.toFixed(1)} ms, ${run.tokensPerSecond.toFixed(1)} tokens/s)` +
        `${run.error ? `, error: ${run.error}` : ''}`,
    );
    expect(run.error).toBeUndefined();
    return run;
  }

  it(
    'streams the fixture tokens in the looped mode, and the same in the per-layer mode',
    async () => {
      const fixture = JSON.parse(await readFile(join(fixturesDir, 'stories260K', 'bos_only.json'), 'utf8')) as Fixture;
      const expected = fixture.tokens.slice(fixture.prompt_tokens.length, fixture.prompt_tokens.length + TOKENS);

      await openPage(browser);
      const support = await page.evaluate(() => window.kloop.support!);
      log(`adapter: ${JSON.stringify(support.adapter)}; problems: ${JSON.stringify(support.problems)}`);
      expect(support.problems).toEqual([]);
      expect(support.ok).toBe(true);
      await expect.poll(() => page.textContent('#adapter-badge')).toMatch(/WebGPU/);

      // The real controls: the served model list, Load, an empty prompt (BOS only), greedy.
      const option = await servedOption(page, 'stories260K · llama2c');
      expect(option, 'stories260K (llama2.c) in the served list').toBeDefined();
      await page.selectOption('#served', option!);
      await page.click('#load');
      await page.waitForFunction(() => document.body.dataset.model === 'stories260K', undefined, { timeout: 60_000 });
      log('model loaded');
      await page.fill('#prompt', '');
      await page.fill('#temperature', '0');
      // K as the page shows it: the engine's default, the same the CLI and the library use.
      expect(await page.inputValue('#k')).toBe(String(DEFAULTS.tokensPerDispatch));
      await page.setChecked('#stop-eos', false);

      const looped = await generate('looped');
      expect(looped.promptTokens).toEqual(fixture.prompt_tokens);
      expect(looped.tokens).toEqual(expected);
      expect(looped.stoppedAt).toBe('max-tokens');
      expect((await page.textContent('#output .gen'))!.length).toBeGreaterThan(0);
      expect(await page.textContent('#output .gen')).toBe(looped.text);
      expect(await page.textContent('#ntok')).toBe(String(TOKENS));

      const perLayer = await generate('per-layer');
      expect(perLayer.tokens).toEqual(looped.tokens);

      // One front door: `kloop generate` and the README's library call give the page's tokens
      // for the same model, prompt and defaults.
      const binPath = join(modelsDir, 'stories260K', 'stories260K.bin');
      let out = '';
      const io = { out: (t: string) => void (out += t), err: () => undefined };
      expect(await main(['generate', '--json', '--model', binPath, '--max-tokens', String(TOKENS), '--ignore-eos'], io)).toBe(0);
      const cli = JSON.parse(out) as { tokens: number[]; promptTokens: number[]; stats: { tokensPerDispatch: number } };
      expect(cli.stats.tokensPerDispatch).toBe(DEFAULTS.tokensPerDispatch);
      expect(cli.promptTokens).toEqual(looped.promptTokens);
      expect(cli.tokens).toEqual(looped.tokens);
      const model = await loadNodeModel(binPath);
      const lib: number[] = [];
      for await (const t of createGenerator(model, { prompt: '', maxTokens: TOKENS, ignoreEos: true })) lib.push(t.id);
      expect(lib).toEqual(looped.tokens);

      // The screenshot shows the per-layer run's text and rates.
      await mkdir(join(repoRoot, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      log(`screenshot: ${SCREENSHOT}`);
      expect(pageErrors).toEqual([]);
    },
    2 * STEP_TIMEOUT + 120_000,
  );

  it(
    'loads a quantized GGUF (Q4_0) from the server, shows its encodings and device memory, and decodes the fixture tokens',
    async () => {
      const name = 'stories260K-Q4_0';
      const fixture = JSON.parse(await readFile(join(fixturesDir, 'quant', `${name}.json`), 'utf8')) as Fixture & { positions: number };
      const expected = fixture.tokens.slice(fixture.prompt_tokens.length, fixture.prompt_tokens.length + TOKENS);
      // The entry names the format once: "stories260K-Q4_0 (gguf) · 270.5 KiB".
      const option = await servedOption(page, `${name} (gguf) · `);
      expect(option, `${name} in the served list`).toBeDefined();
      await page.selectOption('#served', option!);
      await page.click('#load');
      await page.waitForFunction((n) => document.body.dataset.model === n, name, { timeout: 60_000 });
      expect(await page.textContent('#model-info')).toMatch(/q4_0 x 31, f16 x 5, q8_0 x 1/);
      await page.fill('#prompt', 'Once upon a time');
      const looped = await generate('looped');
      expect(looped.promptTokens).toEqual(fixture.prompt_tokens);
      expect(looped.tokens).toEqual(expected);
      // The first run compiles the kernels, the prefill's included: the prefill itself carries none
      // of it (SwiftShader: seconds of compilation, milliseconds of prefill).
      expect(looped.prefillMs).toBeGreaterThan(0);
      expect(looped.prefillMs).toBeLessThan(looped.buildSeconds * 1000);
      const devMiB = Number(await page.textContent('#devmem'));
      log(`${name}: device memory ${devMiB} MiB`);
      expect(devMiB).toBeGreaterThan(0.5);
      expect(devMiB).toBeLessThan(8);
      await page.screenshot({ path: join(repoRoot, 'test-artifacts', 'browser-e2e-q4_0.png'), fullPage: true });
      expect(pageErrors).toEqual([]);
    },
    STEP_TIMEOUT + 120_000,
  );
});
