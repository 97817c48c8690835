/**
 * Where the demo's files are, from this module's place: src/browser/ in a checkout (run through
 * tsx), dist/browser/ in a build or an installed package. Both sit two folders below the root.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const webDir = join(repoRoot, 'web');
/** The browser bundles: written by `npm run build` (shipped in the package) and `npm run build:web`. */
export const distDir = join(webDir, 'dist');
/** The browser sources; absent from an installed package. */
export const browserSrcDir = join(repoRoot, 'src', 'browser');

/** Whether the browser sources are here to bundle (a checkout), rather than prebuilt bundles only. */
export const haveBrowserSources = (): boolean => existsSync(join(browserSrcDir, 'index.ts'));
