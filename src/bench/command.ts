/**
 * `kloop bench`: decode speed of every executor mode (and peers) on one adapter, in one run.
 *
 *   kloop bench [--model PATH | --shape NAME] [--modes per-op,per-layer,looped,looped:16]
 *               [--tokens N] [--repeat R] [--peers] [--gguf PATH] [--predict] [--adapter NAME]
 *               [--json] [--chart FILE.svg|FILE.html]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KloopError } from '../errors.ts';
import { SYNTHETIC_SHAPES } from '../loader/synthetic.ts';
import { resolveDefaultModel } from '../loader/resolve.ts';
import { renderChartHtml, renderChartSvg } from './chart.ts';
import { formatReport, jsonReport } from './format.ts';
import { DEFAULT_MODES, parseModes } from './modes.ts';
import { type BenchOptions, runBench } from './run.ts';

export const BENCH_USAGE = `usage: kloop bench [options]
  --model PATH        model file (default: stories260K)
  --shape NAME        a real-shaped SYNTHETIC model instead: ${Object.keys(SYNTHETIC_SHAPES).join(', ')}
  --seed N            seed of the synthetic weights (default 1234)
  --modes LIST        comma-separated: per-op, per-layer, looped, looped:K (default ${DEFAULT_MODES})
  --tokens N          tokens decoded per measurement, a multiple of every K (default 64)
  --repeat R          interleaved repeats; the median is reported (default 5)
  --peers             also measure llama.cpp (node-llama-cpp, CPU, 1 thread) on the model's GGUF,
                      and kloop's CPU reference executor
  --gguf PATH         the GGUF for the llama.cpp peer (default: the .gguf beside --model)
  --predict           run the device microbenchmarks and print the device model's prediction
  --adapter NAME      WebGPU adapter whose name contains NAME (e.g. SwiftShader)
  --json              print one JSON object on stdout
  --chart FILE        write the chart as SVG (FILE.svg) or HTML (FILE.html)
Progress goes to stderr.
`;

export interface BenchFlags extends Omit<BenchOptions, 'device' | 'progress' | 'log'> {
  json: boolean;
  chart?: string;
  help: boolean;
}

const VALUE_FLAGS = ['--model', '--shape', '--seed', '--modes', '--tokens', '--repeat', '--gguf', '--adapter', '--chart'] as const;
const BOOL_FLAGS = ['--peers', '--predict', '--json', '--help', '-h'] as const;

function int(flag: string, v: string, min: number): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) throw new KloopError(`${flag}: expected an integer >= ${min}, got "${v}"`);
  return Number(v);
}

export function parseBenchFlags(argv: string[]): BenchFlags {
  const f: BenchFlags = { json: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if ((BOOL_FLAGS as readonly string[]).includes(flag)) {
      if (eq > 0) throw new KloopError(`${flag}: takes no value`);
      if (flag === '--peers') f.peers = true;
      else if (flag === '--predict') f.predict = true;
      else if (flag === '--json') f.json = true;
      else f.help = true;
      continue;
    }
    if (!(VALUE_FLAGS as readonly string[]).includes(flag)) {
      throw new KloopError(arg.startsWith('-') ? `${flag}: unknown flag (see kloop bench --help)` : `${arg}: unexpected argument (see kloop bench --help)`);
    }
    let v: string | undefined;
    if (eq > 0) v = arg.slice(eq + 1);
    else {
      v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new KloopError(`${flag}: missing value`);
    }
    if (v === '') throw new KloopError(`${flag}: empty value`);
    switch (flag) {
      case '--model': f.model = v; break;
      case '--shape':
        if (!(v in SYNTHETIC_SHAPES)) throw new KloopError(`--shape ${v}: unknown shape (known: ${Object.keys(SYNTHETIC_SHAPES).join(', ')})`);
        f.shape = v;
        break;
      case '--seed': f.seed = int(flag, v, 0); break;
      case '--modes': parseModes(v); f.modes = v; break;
      case '--tokens': f.tokens = int(flag, v, 1); break;
      case '--repeat': f.repeat = int(flag, v, 1); break;
      case '--gguf': f.gguf = v; break;
      case '--adapter': f.adapter = v; break;
      case '--chart':
        if (!/\.(svg|html?)$/i.test(v)) throw new KloopError(`--chart ${v}: the file must end in .svg or .html`);
        f.chart = v;
        break;
    }
  }
  if (f.model && f.shape) throw new KloopError('--model and --shape: give one of them');
  const tokens = f.tokens ?? 64;
  for (const m of parseModes(f.modes ?? DEFAULT_MODES)) {
    if (tokens % m.k !== 0) throw new KloopError(`--tokens ${tokens}: must be a multiple of ${m.k} for ${m.label}`);
  }
  return f;
}

/** A progress bar on stderr (redrawn in place on a terminal, a line per tenth otherwise). */
export function progressBar(stderr: { write(s: string): unknown; isTTY?: boolean } = process.stderr): (done: number, total: number, what: string) => void {
  let lastTenth = -1;
  return (done, total, what) => {
    const frac = Math.min(1, done / total);
    if (stderr.isTTY) {
      const w = 30;
      const fill = Math.round(frac * w);
      stderr.write(`\r[${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${done}/${total} ${what}`.padEnd(80).slice(0, 100));
      if (done >= total) stderr.write('\n');
    } else {
      const tenth = Math.floor(frac * 10);
      if (tenth !== lastTenth) {
        lastTenth = tenth;
        stderr.write(`bench: ${Math.round(frac * 100)}% (${done}/${total}) ${what}\n`);
      }
    }
  };
}

export async function benchCommand(argv: string[]): Promise<number> {
  const f = parseBenchFlags(argv);
  if (f.help) {
    process.stdout.write(BENCH_USAGE);
    return 0;
  }
  const model = f.shape ? undefined : (f.model ?? (await resolveDefaultModel()));
  const report = await runBench({
    ...f,
    model,
    command: `kloop bench ${argv.join(' ')}`.trim(),
    progress: progressBar(),
    log: (s) => process.stderr.write(`${s}\n`),
  });
  process.stdout.write(f.json ? JSON.stringify(jsonReport(report), null, 2) + '\n' : formatReport(report));
  if (f.chart) {
    const content = /\.html?$/i.test(f.chart) ? renderChartHtml(report) : renderChartSvg(report);
    try {
      await mkdir(dirname(f.chart), { recursive: true });
      await writeFile(f.chart, content);
    } catch (e) {
      throw new KloopError(`--chart ${f.chart}: ${(e as Error).message}`);
    }
    process.stderr.write(`wrote ${f.chart}\n`);
  }
  return 0;
}
