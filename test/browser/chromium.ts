/**
 * The browser tests' launcher: the demo server (port 0, the shared models) and Debian's headless
 * Chromium with WebGPU on SwiftShader, one persistent profile per test file.
 *
 * Chromium: /usr/bin/chromium (Debian's package), or $KLOOP_CHROMIUM; no browser is downloaded.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { type DemoServer, startDemoServer } from '../../src/browser/serve.ts';
import type { PageHook } from '../../src/browser/app.ts';
import { modelsDir } from '../helpers/paths.ts';

export const CHROMIUM = process.env.KLOOP_CHROMIUM ?? '/usr/bin/chromium';

// Playwright adds --headless, --no-sandbox, --no-first-run, --disable-background-networking,
// --disable-component-update, --disable-sync and the profile (--user-data-dir) itself.
const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--disable-quic'];

declare global {
  interface Window {
    kloop: PageHook;
  }
}

export interface DemoBrowser {
  server: DemoServer;
  context: BrowserContext;
  page: Page;
  /** Uncaught errors of the page. */
  pageErrors: string[];
  /** Every console line of the page, as "type: text". */
  consoleLines: string[];
  /** Logs `s` with the seconds since the launch, prefixed by `tag`. */
  log: (s: string) => void;
  close(): Promise<void>;
}

/** Starts the demo server and Chromium (not yet on the page: call page.goto(server.url)). */
export async function launchDemo(tag: string): Promise<DemoBrowser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium package (or set KLOOP_CHROMIUM to a Chromium binary)`);
  }
  const t0 = performance.now();
  const log = (s: string) => console.log(`[${tag} ${((performance.now() - t0) / 1000).toFixed(1)} s] ${s}`);
  const server = await startDemoServer({ port: 0, modelsDir });
  log(`demo server on ${server.url} (models from ${server.modelsDir})`);
  const profile = await mkdtemp(join(tmpdir(), 'kloop-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1360, height: 1000 },
    });
  } catch (e) {
    await rm(profile, { recursive: true, force: true });
    await server.close();
    throw e;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  const consoleLines: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    consoleLines.push(`${m.type()}: ${m.text()}`);
    if (m.type() === 'error') log(`console error: ${m.text()}`);
  });
  log('chromium started');
  return {
    server,
    context,
    page,
    pageErrors,
    consoleLines,
    log,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true });
      await server.close();
    },
  };
}

/** Opens the page and waits for its WebGPU check and model list. */
export async function openPage(b: DemoBrowser): Promise<void> {
  await b.page.goto(b.server.url);
  await b.page.waitForFunction(() => document.body.dataset.ready === '1', undefined, { timeout: 60_000 });
}

/** The value of the served list's option whose text starts with `prefix`. */
export async function servedOption(page: Page, prefix: string): Promise<string | undefined> {
  return page.$eval('#served', (sel, p) => [...(sel as HTMLSelectElement).options].find((o) => o.textContent!.startsWith(p))?.value, prefix);
}
