/**
 * The demo server (`kloop demo`, src/cli/demo.ts): builds the browser bundles (esbuild; an
 * installed package serves the prebuilt ones) and serves the demo page on 127.0.0.1 only:
 *
 *   /                 web/index.html (and the other files of web/)
 *   /dist/*           the bundles, built at start (or read) and kept in memory
 *   /models/          JSON list of the models under the models folder (llama2.c .bin with their
 *                     tokenizer, .gguf), what the page's model picker shows
 *   /models/<path>    the model files themselves
 *
 * The models folder is --models DIR, else $KLOOP_MODELS, else the default model's home
 * (the checkout's weights/, or an installed package's cache folder: loader/resolve.ts).
 * Requests whose Host is not a loopback name are refused (no DNS rebinding onto the models).
 */
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, relative, resolve, sep } from 'node:path';
import { KloopError } from '../errors.ts';
import { findLlama2cTokenizer } from '../loader/index.ts';
import { parseLlama2cHeader } from '../loader/llama2c.ts';
import type { BuiltFile } from './build.ts';
import { distDir, haveBrowserSources, webDir } from './paths.ts';
import { defaultModelsHome } from '../loader/resolve.ts';

export const DEFAULT_PORT = 8080;
const HOST = '127.0.0.1';


/** The models folder: $KLOOP_MODELS, else where the default model is kept (weights/ in a checkout). */
export function defaultModelsDir(env: Record<string, string | undefined> = process.env): string {
  return env.KLOOP_MODELS ? resolve(env.KLOOP_MODELS) : defaultModelsHome(env);
}

/**
 * The page's bundles: built in memory from the sources in a checkout (esbuild, a development
 * dependency, loaded only then), else the prebuilt ones an installed package ships in web/dist.
 */
async function loadBundles(): Promise<Map<string, BuiltFile>> {
  if (haveBrowserSources()) {
    try {
      const { buildWeb } = await import('./build.ts');
      return new Map((await buildWeb({ write: false })).map((f) => [f.name, f]));
    } catch (e) {
      throw new KloopError(`demo: the browser bundle failed to build: ${(e as Error).message}`);
    }
  }
  const files = new Map<string, BuiltFile>();
  for (const name of ['kloop.js', 'app.js']) {
    try {
      files.set(name, { name, contents: await readFile(join(distDir, name)) });
    } catch {
      throw new KloopError(`demo: the browser bundle ${join(distDir, name)} is missing (build it with npm run build:web in a checkout)`);
    }
  }
  return files;
}

/** One entry of the /models/ list. */
export interface ServedModel {
  /** Shown name, e.g. "stories260K" or "stories260K (gguf)". */
  name: string;
  format: 'llama2c' | 'gguf';
  /** URL of the model file, e.g. /models/stories260K/stories260K.bin. */
  model: string;
  /** URL of the tokenizer (llama2.c checkpoints). */
  tokenizer?: string;
  bytes: number;
  /** dim / layers / heads / vocab, when the header was read. */
  summary?: string;
}

const urlOf = (root: string, path: string): string =>
  '/models/' + relative(root, path).split(sep).map(encodeURIComponent).join('/');

/** Models under `root` and its sub-folders (one level): GGUF files and llama2.c checkpoints with a tokenizer beside them. */
export async function listModels(root: string): Promise<ServedModel[]> {
  const out: ServedModel[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory() || e.isSymbolicLink()) {
        if (depth < 1 && (await stat(p).catch(() => undefined))?.isDirectory()) await visit(p, depth + 1);
        if (e.isDirectory()) continue;
      }
      const lower = e.name.toLowerCase();
      const st = await stat(p).catch(() => undefined);
      if (!st?.isFile()) continue;
      if (lower.endsWith('.gguf')) {
        out.push({ name: `${e.name.replace(/\.gguf$/i, '')} (gguf)`, format: 'gguf', model: urlOf(root, p), bytes: st.size });
      } else if (lower.endsWith('.bin') && !/^tok.*\.bin$/i.test(e.name)) {
        const header = await readHead(p, 28);
        let summary: string | undefined;
        try {
          const c = parseLlama2cHeader(p, header, st.size).config;
          summary = `dim ${c.dim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv), vocab ${c.vocabSize}, context ${c.seqLen}`;
        } catch {
          continue; // not a llama2.c checkpoint
        }
        let tokenizer: string | undefined;
        try {
          tokenizer = urlOf(root, await findLlama2cTokenizer(p));
        } catch {
          continue; // no tokenizer beside it: the page could not load it
        }
        out.push({ name: e.name.replace(/\.bin$/i, ''), format: 'llama2c', model: urlOf(root, p), tokenizer, bytes: st.size, summary });
      }
    }
  };
  await visit(root, 0);
  return out;
}

async function readHead(path: string, n: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  try {
    const fh = await open(path, 'r');
    try {
      const { bytesRead } = await fh.read(buf, 0, n, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch {
    return new Uint8Array(0);
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

export interface DemoServerOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default defaultModelsDir(). */
  modelsDir?: string;
  /** Request log (default none). */
  log?: (line: string) => void;
}

export interface DemoServer {
  url: string;
  port: number;
  modelsDir: string;
  close(): Promise<void>;
}

/** Builds the bundles and starts the server on 127.0.0.1. */
export async function startDemoServer(opts: DemoServerOptions = {}): Promise<DemoServer> {
  const modelsDir = resolve(opts.modelsDir ?? defaultModelsDir());
  const dist = await loadBundles();
  const port = opts.port ?? DEFAULT_PORT;
  let realRoot: string | undefined;
  const modelsRoot = async (): Promise<string | undefined> => (realRoot ??= await realpath(modelsDir).catch(() => undefined));

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `internal error: ${e.message}\n`);
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const addr = server.address() as AddressInfo;
    const host = (req.headers.host ?? '').toLowerCase();
    if (![`127.0.0.1:${addr.port}`, `localhost:${addr.port}`, `[::1]:${addr.port}`].includes(host)) {
      send(res, 403, 'text/plain; charset=utf-8', 'forbidden: the demo answers only on 127.0.0.1 / localhost\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      send(res, 400, 'text/plain; charset=utf-8', 'bad path\n');
      return;
    }
    opts.log?.(`${req.method} ${path}`);
    if (path.split('/').some((s) => s === '..' || s.includes('\\') || s.includes('\0'))) {
      send(res, 400, 'text/plain; charset=utf-8', 'bad path\n');
      return;
    }
    if (path === '/models' || path === '/models/' || path === '/models/index.json') {
      const root = await modelsRoot();
      const models = root ? await listModels(root) : [];
      send(res, 200, TYPES['.json']!, JSON.stringify({ models, folder: root ? 'found' : 'missing' }));
      return;
    }
    if (path.startsWith('/models/')) {
      await sendModelFile(res, req.method === 'HEAD', path.slice('/models/'.length));
      return;
    }
    if (path.startsWith('/dist/')) {
      const f = dist.get(path.slice('/dist/'.length));
      if (!f) return notFound(res);
      send(res, 200, TYPES[extname(path)] ?? 'application/octet-stream', f.contents, req.method === 'HEAD');
      return;
    }
    const name = path === '/' ? 'index.html' : path.slice(1);
    if (name.includes('/') || name.startsWith('.')) return notFound(res);
    const type = TYPES[extname(name)];
    if (!type) return notFound(res);
    let body: Buffer;
    try {
      body = await readFile(join(webDir, name));
    } catch {
      return notFound(res);
    }
    send(res, 200, type, body, req.method === 'HEAD');
  }

  async function sendModelFile(res: ServerResponse, head: boolean, rel: string): Promise<void> {
    const root = await modelsRoot();
    if (!root || rel === '') return notFound(res);
    let real: string;
    try {
      real = await realpath(join(root, rel));
    } catch {
      return notFound(res);
    }
    if (real !== root && !real.startsWith(root + sep)) return notFound(res);
    const st = await stat(real).catch(() => undefined);
    if (!st?.isFile()) return notFound(res);
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(st.size),
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
    });
    if (head) {
      res.end();
      return;
    }
    const stream = createReadStream(real);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  await new Promise<void>((ok, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') fail(new KloopError(`--port ${port}: in use on ${HOST}; pass another port, or --port 0 for a free one`));
      else if (e.code === 'EACCES') fail(new KloopError(`--port ${port}: not allowed (ports under 1024 need privileges); pass --port 0 for a free one`));
      else fail(e);
    });
    server.listen(port, HOST, () => ok());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://${HOST}:${actual}/`,
    port: actual,
    modelsDir,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array, head = false): void {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': String(bytes.byteLength),
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(head ? undefined : bytes);
}

function notFound(res: ServerResponse): void {
  send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
}
