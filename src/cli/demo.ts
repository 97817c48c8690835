/**
 * `kloop demo` (`npm run demo`): serves the browser demo (src/browser/serve.ts) until SIGINT /
 * SIGTERM.
 */
import { DEFAULT_PORT, listModels, startDemoServer } from '../browser/serve.ts';
import { intFlag, parseFlags, pathFlag } from './args.ts';
import type { Io } from './io.ts';

export const DEMO_USAGE = `usage: kloop demo [--port N] [--models DIR]
  --port N      port on 127.0.0.1 (default ${DEFAULT_PORT}; 0 picks a free one)
  --models DIR  folder of models to offer (default $KLOOP_MODELS, else weights/, or an
                installed package's cache folder)
Serves the browser demo: pick a model, stream tokens in any mode, compare the modes on your GPU.
`;

/** Parses the flags of `kloop demo` (the CLI's parseFlags, as every command). */
export function parseDemoFlags(argv: string[]): { port: number; modelsDir?: string; help: boolean } {
  const v = parseFlags('demo', argv, { port: 'string', models: 'string' } as const);
  const port = v.port === undefined ? DEFAULT_PORT : intFlag('port', v.port, 0, 65535);
  return { port, modelsDir: pathFlag('models', v.models), help: !!v.help };
}

/**
 * `kloop demo`: serves until SIGINT / SIGTERM, then returns 0. Prints the URL (with the chosen
 * port for --port 0) on stdout.
 */
export async function demoCommand(argv: string[], io: Io): Promise<number> {
  const f = parseDemoFlags(argv);
  if (f.help) {
    io.out(DEMO_USAGE);
    return 0;
  }
  const s = await startDemoServer({ port: f.port, modelsDir: f.modelsDir });
  const models = await listModels(s.modelsDir).catch(() => []);
  try {
    io.out(`kloop demo: serving ${s.url}\n`);
    io.out(
      models.length > 0
        ? `  models from ${s.modelsDir}: ${models.map((m) => m.name).join(', ')}\n`
        : `  no models found in ${s.modelsDir} (set KLOOP_MODELS or --models; the page can still load a URL or local files)\n`,
    );
    io.out('  press Ctrl+C to stop\n');
  } catch (e) {
    await s.close();
    throw e;
  }
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
