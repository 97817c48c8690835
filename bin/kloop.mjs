#!/usr/bin/env node
// `npx kloop`: runs src/cli/main.ts through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../src/cli/main.ts');
await run();
