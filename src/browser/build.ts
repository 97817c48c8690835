/**
 * The browser build (esbuild): src/browser/index.ts -> web/dist/kloop.js (the library, ESM) and
 * src/browser/app.ts -> web/dist/app.js (the demo page's script, importing ./kloop.js).
 *
 * The loaders' file-system module (src/loader/fs.ts) is swapped for fs.browser.ts, and 'webgpu'
 * (Dawn, loaded by the engine only in Node) and node:* stay external: the Node branches that
 * import them never run in a browser. `npm run build:web` runs this file.
 */
import * as esbuild from 'esbuild';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { browserSrcDir as here, distDir, repoRoot } from './paths.ts';

export interface BuildOptions {
  /** Write web/dist (default true); false keeps the output in memory. */
  write?: boolean;
  minify?: boolean;
  /** Linked source maps (default true; the package's prebuilt bundles ship without). */
  sourcemap?: boolean;
}

export interface BuiltFile {
  /** Path under web/dist, e.g. "kloop.js". */
  name: string;
  contents: Uint8Array;
}

/** Redirects the Node file-system module of the loaders to its browser stand-in. */
const browserFs: esbuild.Plugin = {
  name: 'kloop-browser-fs',
  setup(build) {
    build.onResolve({ filter: /^\.\/fs\.ts$/ }, (args) => {
      if (resolve(args.resolveDir) !== join(repoRoot, 'src', 'loader')) return undefined;
      return { path: join(repoRoot, 'src', 'loader', 'fs.browser.ts') };
    });
  },
};

/** In the page's script (app.ts, page.ts), the library import becomes the separate bundle ./kloop.js. */
const libraryExternal: esbuild.Plugin = {
  name: 'kloop-library-external',
  setup(build) {
    build.onResolve({ filter: /^\.\/index\.ts$/ }, (args) =>
      [join(here, 'app.ts'), join(here, 'page.ts')].includes(args.importer) ? { path: './kloop.js', external: true } : undefined,
    );
  },
};

const common: esbuild.BuildOptions = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  external: ['webgpu', 'node:*'],
  sourcemap: 'linked',
  logLevel: 'silent',
  legalComments: 'none',
  outdir: distDir,
};

/** Builds both bundles (checked free of static Node imports); throws with esbuild's messages on an error. */
export async function buildWeb(opts: BuildOptions = {}): Promise<BuiltFile[]> {
  const sourcemap = opts.sourcemap === false ? false : 'linked';
  const results = await Promise.all([
    esbuild.build({ ...common, write: false, minify: opts.minify, sourcemap, entryPoints: { kloop: join(here, 'index.ts') }, plugins: [browserFs] }),
    esbuild.build({ ...common, write: false, minify: opts.minify, sourcemap, entryPoints: { app: join(here, 'app.ts') }, plugins: [libraryExternal] }),
  ]);
  const files: BuiltFile[] = [];
  for (const r of results) {
    for (const f of r.outputFiles) files.push({ name: relative(distDir, f.path).replace(/\\/g, '/'), contents: f.contents });
  }
  checkNoStaticNodeImports(files);
  if (opts.write ?? true) {
    await mkdir(distDir, { recursive: true });
    await Promise.all(files.map((f) => writeFile(join(distDir, f.name), f.contents)));
  }
  return files;
}

/**
 * The bundle may mention node:* and 'webgpu' only in dynamic import()s (Node-only branches);
 * a static import would stop the page from loading.
 */
export function checkNoStaticNodeImports(files: BuiltFile[]): void {
  const dec = new TextDecoder();
  for (const f of files) {
    if (!f.name.endsWith('.js')) continue;
    const text = dec.decode(f.contents);
    const m = /^\s*import\s[^;]*?from\s*["'](node:[^"']+|webgpu)["']/m.exec(text) ?? /^\s*import\s*["'](node:[^"']+|webgpu)["']/m.exec(text);
    if (m) throw new Error(`web/dist/${f.name}: static import of ${m[1]} (a Node-only module reached the browser bundle)`);
  }
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const files = await buildWeb({ minify: process.argv.includes('--minify'), sourcemap: !process.argv.includes('--no-sourcemap') });
  for (const f of files) console.log(`web/dist/${f.name}  ${(f.contents.length / 1024).toFixed(1)} KiB`);
  console.log(`built in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e: Error) => {
    console.error(e.message);
    process.exit(1);
  });
}
