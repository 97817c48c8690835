#!/usr/bin/env node
// `npx kloop`: an installed package runs its build (dist/cli/main.js); a checkout runs the
// sources through tsx (a dev dependency), so it never runs a stale build.
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli/main.ts', import.meta.url);
let run;
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ run } = await import(sources.href));
} else {
  ({ run } = await import(new URL('../dist/cli/main.js', import.meta.url).href));
}
await run();
