/**
 * `kloop demo` (`npm run demo`): serves the browser demo (src/browser/serve.ts) until SIGINT /
 * SIGTERM.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_PORT, listModels, startDemoServer } from '../browser/serve.ts';
import { KloopError } from '../errors.ts';

export const DEMO_USAGE = `usage: kloop demo [--port N] [--models DIR]
  --port N      port on 127.0.0.1 (default ${DEFAULT_PORT}; 0 picks a free one)
  --models DIR  folder of models to offer (default $KLOOP_MODELS, else weights/)
Serves the browser demo: pick a model, stream tokens in any mode, compare the modes on your GPU.
`;

/** Parses the flags of `kloop demo`. */
export function parseDemoFlags(argv: string[]): { port: number; modelsDir?: string; help: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { port: { type: 'string' }, models: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new KloopError(`${String((e as Error).message).split('\n')[0]} (see kloop demo --help)`);
  }
  let port = DEFAULT_PORT;
  if (values.port !== undefined) {
    const v = values.port.trim();
    port = Number(v);
    if (!/^\d+$/.test(v) || port > 65535) throw new KloopError(`--port: expected an integer in [0, 65535], got "${values.port}"`);
  }
  if (values.models !== undefined && values.models.trim() === '') throw new KloopError('--models: empty path');
  return { port, modelsDir: values.models, help: values.help ?? false };
}

/**
 * `kloop demo`: serves until SIGINT / SIGTERM, then returns 0. Prints the URL (with the chosen
 * port for --port 0) on stdout.
 */
export async function demoCommand(argv: string[]): Promise<number> {
  const f = parseDemoFlags(argv);
  if (f.help) {
    process.stdout.write(DEMO_USAGE);
    return 0;
  }
  const s = await startDemoServer({ port: f.port, modelsDir: f.modelsDir });
  const models = await listModels(s.modelsDir).catch(() => []);
  process.stdout.write(`kloop demo: serving ${s.url}\n`);
  process.stdout.write(
    models.length > 0
      ? `  models from ${s.modelsDir}: ${models.map((m) => m.name).join(', ')}\n`
      : `  no models found in ${s.modelsDir} (set KLOOP_MODELS or --models; the page can still load a URL or local files)\n`,
  );
  process.stdout.write('  press Ctrl+C to stop\n');
  await new Promise<void>((ok) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      ok();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await s.close();
  return 0;
}
