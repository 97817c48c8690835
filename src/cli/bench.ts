/**
 * `kloop bench`: decode speed of every executor mode (and peers) on one adapter, in one run.
 *
 *   kloop bench [--model PATH [--tokenizer PATH] | --shape NAME [--type T]] [--modes per-op,per-layer,looped,looped:16]
 *               [--tokens N] [--repeat R] [--peers] [--gguf PATH] [--predict] [--adapter NAME]
 *               [--json] [--chart FILE.svg|FILE.html]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { renderChartHtml, renderChartSvg } from '../bench/chart.ts';
import { formatReport, jsonReport } from '../bench/format.ts';
import { DEFAULT_MODES, parseModes } from '../bench/modes.ts';
import { LLAMA_GPUS, type LlamaGpu } from '../bench/peers.ts';
import { type BenchOptions, runBench } from '../bench/run.ts';
import { KloopError } from '../errors.ts';
import { FORMATS } from '../loader/quant.ts';
import { SYNTHETIC_SHAPES } from '../loader/synthetic.ts';
import type { WeightType } from '../loader/types.ts';
import { atLeastFlag, parseFlags, pathFlag } from './args.ts';
import { checkShapeFlags, checkTokenizer, defaultModelPath } from './engine.ts';
import type { Io } from './io.ts';

export const BENCH_USAGE = `usage: kloop bench [options]
  --model PATH        model file (default: stories260K)
  --tokenizer PATH    tokenizer of a llama2.c --model (default: the tok*.bin beside it)
  --shape NAME        a real-shaped SYNTHETIC model instead: ${Object.keys(SYNTHETIC_SHAPES).join(', ')}
  --seed N            seed of the synthetic weights, with --shape (default 1234)
  --type T            encoding of the synthetic model's matrices: ${Object.keys(FORMATS).join(', ')} (default f32)
  --modes LIST        comma-separated: per-op, per-layer, looped, looped:K (default ${DEFAULT_MODES})
  --tokens N          tokens decoded per measurement, a multiple of every K (default 64)
  --prompt-tokens N   also time the prefill of an N-token prompt (batched forward) per mode
  --repeat R          interleaved repeats; the median is reported (default 5)
  --peers             also measure llama.cpp (node-llama-cpp, CPU, 1 thread) on the model's GGUF,
                      and kloop's CPU reference executor
  --llama-gpu B       also measure llama.cpp with every layer on the GPU through node-llama-cpp's
                      B build (${LLAMA_GPUS.join(', ')}), on the model's GGUF
  --gguf PATH         the GGUF for the llama.cpp peer of --peers / --llama-gpu (default: the
                      .gguf beside --model)
  --predict           run the device microbenchmarks and print the device model's prediction
  --adapter NAME      WebGPU adapter whose name contains NAME (e.g. SwiftShader)
  --workgroup-size N  invocations per workgroup of the kernels, a power of two (default: on GPUs
                      1024 for models of width 1024 or more, else 256; on CPU adapters the
                      measured lockstep width (8 on llvmpipe, 4 on SwiftShader), else 16, 8
                      on SwiftShader; capped by the adapter's limit)
  --weight-store S    storage or texture: where f32 weights live on the device (default: the
                      engine's choice per adapter; texture on CPU adapters)
  --subgroups on|off  use subgroup rows where the probe passed (default on): CPU adapters share
                      the matvecs' input values over them, GPUs sum a row's lanes with them
  --pad-staging on|off  pad the matvecs' staged input by a word per 32 values, against
                      shared-memory bank conflicts (default on for GPUs, off on CPU adapters)
  --host-wait W       sleep or spin: how the host waits for the device's readbacks (default
                      sleep: short sleeps while a readback is pending; spin: Dawn's own poll
                      loop at full speed)
  --json              print one JSON object on stdout
  --chart FILE        write the chart as SVG (FILE.svg) or HTML (FILE.html)
Progress goes to stderr.
`;

export interface BenchFlags extends Omit<BenchOptions, 'device' | 'progress' | 'log'> {
  json: boolean;
  chart?: string;
  help: boolean;
}

const FLAGS = {
  model: 'string', tokenizer: 'string', shape: 'string', seed: 'string', type: 'string', modes: 'string', tokens: 'string', 'prompt-tokens': 'string', repeat: 'string',
  gguf: 'string', 'llama-gpu': 'string', adapter: 'string', 'workgroup-size': 'string', 'weight-store': 'string', subgroups: 'string', 'pad-staging': 'string', 'host-wait': 'string', chart: 'string', peers: 'boolean', predict: 'boolean', json: 'boolean',
} as const;

export function parseBenchFlags(argv: string[]): BenchFlags {
  const v = parseFlags('bench', argv, FLAGS);
  const f: BenchFlags = { json: !!v.json, help: !!v.help };
  if (v.peers) f.peers = true;
  if (v.predict) f.predict = true;
  if (v.model !== undefined) f.model = pathFlag('model', v.model);
  checkShapeFlags(v);
  if (v.tokenizer !== undefined) f.tokenizer = pathFlag('tokenizer', v.tokenizer);
  if (v.shape !== undefined) {
    if (!(v.shape in SYNTHETIC_SHAPES)) throw new KloopError(`--shape ${v.shape}: unknown shape (known: ${Object.keys(SYNTHETIC_SHAPES).join(', ')})`);
    f.shape = v.shape;
  }
  if (v.type !== undefined) {
    if (!Object.hasOwn(FORMATS, v.type)) throw new KloopError(`--type ${v.type}: unknown weight type (known: ${Object.keys(FORMATS).join(', ')})`);
    if (v.shape === undefined) throw new KloopError('--type needs --shape (a model file keeps its own encodings)');
    f.type = v.type as WeightType;
  }
  if (v.seed !== undefined) f.seed = atLeastFlag('--seed', v.seed, 0);
  if (v.modes !== undefined) {
    parseModes(v.modes);
    f.modes = v.modes;
  }
  if (v.tokens !== undefined) f.tokens = atLeastFlag('--tokens', v.tokens, 1);
  if (v['prompt-tokens'] !== undefined) f.promptTokens = atLeastFlag('--prompt-tokens', v['prompt-tokens'], 1);
  if (v.repeat !== undefined) f.repeat = atLeastFlag('--repeat', v.repeat, 1);
  if (v.gguf !== undefined) {
    if (!v.peers && v['llama-gpu'] === undefined) throw new KloopError('--gguf: only the llama.cpp peer reads a GGUF (add --peers or --llama-gpu B)');
    if (v.shape !== undefined) throw new KloopError('--gguf: a synthetic --shape model has no GGUF for llama.cpp (write one with kloop convert --shape, then bench --model FILE.gguf)');
    f.gguf = pathFlag('gguf', v.gguf);
  }
  if (v['llama-gpu'] !== undefined) {
    if (!(LLAMA_GPUS as readonly string[]).includes(v['llama-gpu'])) throw new KloopError(`--llama-gpu ${v['llama-gpu']}: must be one of ${LLAMA_GPUS.join(', ')}`);
    f.llamaGpu = v['llama-gpu'] as LlamaGpu;
  }
  if (v.adapter !== undefined) f.adapter = v.adapter;
  if (v['workgroup-size'] !== undefined) {
    const wg = atLeastFlag('--workgroup-size', v['workgroup-size'], 1);
    if ((wg & (wg - 1)) !== 0 || wg > 1024) throw new KloopError(`--workgroup-size ${wg}: must be a power of two, at most 1024`);
    f.workgroupSize = wg;
  }
  if (v['weight-store'] !== undefined) {
    if (v['weight-store'] !== 'storage' && v['weight-store'] !== 'texture') throw new KloopError(`--weight-store ${v['weight-store']}: must be storage or texture`);
    f.weightStore = v['weight-store'];
  }
  if (v.subgroups !== undefined) {
    if (v.subgroups !== 'on' && v.subgroups !== 'off') throw new KloopError(`--subgroups ${v.subgroups}: must be on or off`);
    f.subgroups = v.subgroups === 'on';
  }
  if (v['pad-staging'] !== undefined) {
    if (v['pad-staging'] !== 'on' && v['pad-staging'] !== 'off') throw new KloopError(`--pad-staging ${v['pad-staging']}: must be on or off`);
    f.padStaging = v['pad-staging'] === 'on';
  }
  if (v['host-wait'] !== undefined) {
    if (v['host-wait'] !== 'sleep' && v['host-wait'] !== 'spin') throw new KloopError(`--host-wait ${v['host-wait']}: must be sleep or spin`);
    f.hostWait = v['host-wait'];
  }
  if (v.chart !== undefined) {
    if (!/\.(svg|html?)$/i.test(v.chart)) throw new KloopError(`--chart ${v.chart}: the file must end in .svg or .html`);
    f.chart = v.chart;
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

export async function benchCommand(argv: string[], io: Io): Promise<number> {
  const f = parseBenchFlags(argv);
  if (f.help) {
    io.out(BENCH_USAGE);
    return 0;
  }
  const model = f.shape ? undefined : (f.model ?? (await defaultModelPath(io)));
  if (model !== undefined && f.tokenizer !== undefined) await checkTokenizer(model);
  const report = await runBench({
    ...f,
    model,
    command: `kloop bench ${argv.join(' ')}`.trim(),
    progress: progressBar({ write: (s) => io.err(s), isTTY: process.stderr.isTTY }),
    log: (s) => io.err(`${s}\n`),
  });
  io.out(f.json ? JSON.stringify(jsonReport(report), null, 2) + '\n' : formatReport(report));
  if (f.chart) {
    const content = /\.html?$/i.test(f.chart) ? renderChartHtml(report) : renderChartSvg(report);
    try {
      await mkdir(dirname(f.chart), { recursive: true });
      await writeFile(f.chart, content);
    } catch (e) {
      throw new KloopError(`--chart ${f.chart}: ${(e as Error).message}`);
    }
    io.err(`wrote ${f.chart}\n`);
  }
  return 0;
}
