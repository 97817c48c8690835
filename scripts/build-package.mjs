#!/usr/bin/env node
// `npm run build` (also run by `prepare`, so installs from git and `npm pack` build it):
// compiles src/ to JavaScript and .d.ts in dist/ (tsconfig.build.json), from a clean dist/,
// then bundles the demo page's scripts into web/dist/ (kloop.js, app.js; minified, without
// source maps), which the package ships so that an installed `kloop demo` needs no bundler.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
const r = spawnSync('tsc', ['-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
if (r.error) {
  console.error(`build: cannot run tsc (${r.error.message}); run it through npm run build, with the dev dependencies installed`);
  process.exit(1);
}
if (r.status !== 0) process.exit(r.status ?? 1);
rmSync(new URL('../web/dist', import.meta.url), { recursive: true, force: true });
// Without them (esbuild missing or unable to run on this platform) the library and the CLI still
// work, and `kloop demo` in a checkout bundles the sources itself: a warning, not a failed install.
// The package test checks that a packed tarball carries them.
try {
  const { buildWeb } = await import(new URL('../dist/browser/build.js', import.meta.url).href);
  await buildWeb({ minify: true, sourcemap: false });
} catch (e) {
  console.warn(`build: warning: the demo page's bundles (web/dist) were not built: ${e.message}`);
}
