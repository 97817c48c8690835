/**
 * `kloop timing-model`: the analytical SN40L / DGX H100 decode model on one model.
 *
 *   kloop timing-model [--model NAME|config.json|dir|FILE [--tokenizer PATH]] [--context N] [--batch B]
 *                      [--sockets 1,8,16] [--output-tokens N] [--flops CONVENTION]
 *                      [--json] [--svg FILE]
 */
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { KloopError } from '../errors.ts';
import type { ModelConfig } from '../loader/types.ts';
import { PRESET_NAMES, getPreset, shapeFromHFConfig, shapeFromModelConfig } from '../rdu-emulation/presets/index.ts';
import { FLOP_CONVENTIONS, flopConvention } from '../rdu-emulation/timing/flops.ts';
import { renderPlotSvg } from '../rdu-emulation/timing/plot.ts';
import { formatReport, timingReport } from '../rdu-emulation/timing/report.ts';
import type { ModelShape } from '../rdu-emulation/timing/types.ts';
import { formatValidation, validationCases } from '../rdu-emulation/timing/validate.ts';
import { atLeastFlag, parseFlags, pathFlag } from './args.ts';

/** Default model: Table 1 of the paper characterises Llama 3.1 8B. */
export const DEFAULT_MODEL = 'llama-3.1-8b';

export const TIMING_MODEL_USAGE = `usage: kloop timing-model [options]
  --model NAME|PATH   preset (${PRESET_NAMES.join(', ')}),
                      a Hugging Face config.json, a folder holding one, or a model kloop loads
                      (default ${DEFAULT_MODEL}, the model of the paper's Table 1)
  --tokenizer PATH    tokenizer of a llama2.c --model (default: the tok*.bin beside it)
  --context N         tokens in the KV cache (default 4096)
  --batch B           sequences decoded together (default 1)
  --sockets LIST      SN40L socket counts, comma-separated (default 1,8,16)
  --output-tokens N   tokens generated per request (default 128)
  --flops NAME        FLOP convention: ${Object.keys(FLOP_CONVENTIONS).join(', ')} (default paper-table1)
  --json              print JSON instead of the table
  --svg FILE          also write the tokens/s-vs-sockets plot (sockets 1, 2, 4, 8, 16)
  --validate          check the model against the paper's figures instead (only --json
                      applies): each case is 'fit' (the calibration used it) or 'held-out';
                      with --json prints {"cases": [{"id", "role", "paper", "model", "pass"}, ...]}
`;

export interface TimingModelCommandOptions {
  /** kloop's loader, for model files that are not a config.json (wired by the CLI), with --tokenizer. */
  loadModelConfig?: (path: string, tokenizer?: string) => Promise<ModelConfig>;
  /** Where output goes (default process.stdout / process.stderr). */
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

interface Flags {
  model: string;
  tokenizer?: string;
  context: number;
  batch: number;
  sockets: number[];
  outputTokens: number;
  flops: string;
  json: boolean;
  svg?: string;
  validate: boolean;
  help: boolean;
}

const FLAGS = {
  model: 'string', tokenizer: 'string', context: 'string', batch: 'string', sockets: 'string', 'output-tokens': 'string',
  flops: 'string', svg: 'string', json: 'boolean', validate: 'boolean',
} as const;

export function parseTimingModelFlags(argv: string[]): Flags {
  const f: Flags = { model: DEFAULT_MODEL, context: 4096, batch: 1, sockets: [1, 8, 16], outputTokens: 128, flops: 'paper-table1', json: false, validate: false, help: false };
  const v = parseFlags('timing-model', argv, FLAGS);
  f.json = !!v.json;
  f.help = !!v.help;
  f.validate = !!v.validate;
  if (f.validate) {
    // --validate checks the paper's own cases: every flag but --json would be ignored.
    const unused = Object.keys(v).find((k) => !['validate', 'json', 'help'].includes(k));
    if (unused === 'svg') throw new KloopError(`--svg: --validate writes no plot (it checks the paper's figures); drop one of them`);
    if (unused !== undefined) throw new KloopError(`--${unused}: not used by --validate (it checks the paper's own cases; only --json applies)`);
  }
  if (v.model !== undefined) f.model = v.model;
  if (v.tokenizer !== undefined) f.tokenizer = pathFlag('tokenizer', v.tokenizer);
  if (v.context !== undefined) f.context = atLeastFlag('--context', v.context, 0);
  if (v.batch !== undefined) f.batch = atLeastFlag('--batch', v.batch, 1);
  if (v['output-tokens'] !== undefined) f.outputTokens = atLeastFlag('--output-tokens', v['output-tokens'], 0);
  if (v.sockets !== undefined) f.sockets = [...new Set(v.sockets.split(',').map((s) => atLeastFlag('--sockets', s.trim(), 1)))];
  if (v.flops !== undefined) {
    if (!(v.flops in FLOP_CONVENTIONS)) {
      throw new KloopError(`--flops: unknown convention "${v.flops}" (known: ${Object.keys(FLOP_CONVENTIONS).join(', ')})`);
    }
    f.flops = v.flops;
  }
  if (v.svg !== undefined) f.svg = v.svg;
  return f;
}

/** Read the header of a llama2.c .bin checkpoint (7 little-endian int32). */
function shapeFromLlama2cHeader(buf: Buffer, name: string): ModelShape {
  if (buf.length < 28) throw new KloopError(`--model: ${name}: too short for a llama2.c header`);
  const h = Array.from({ length: 7 }, (_, i) => buf.readInt32LE(4 * i));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab] = h as [number, number, number, number, number, number];
  if (!(dim > 0 && hiddenDim > 0 && nLayers > 0 && nHeads > 0 && nKvHeads > 0 && vocab !== 0 && dim % nHeads === 0)) {
    throw new KloopError(`--model: ${name}: not a llama2.c checkpoint header`);
  }
  return {
    name,
    nLayers,
    hidden: dim,
    nHeads,
    nKvHeads,
    headDim: dim / nHeads,
    ffn: hiddenDim,
    vocab: Math.abs(vocab),
    bytesPerParam: 2,
    tiedEmbeddings: vocab > 0,
  };
}

export async function resolveModel(spec: string, opts: TimingModelCommandOptions = {}, tokenizer?: string): Promise<ModelShape> {
  const noTokenizer = (what: string): void => {
    if (tokenizer !== undefined) throw new KloopError(`--tokenizer: only a llama2.c checkpoint takes a separate tokenizer (${what})`);
  };
  const preset = getPreset(spec);
  if (preset) {
    noTokenizer(`${spec} is a preset`);
    return preset;
  }
  const st = await stat(spec).catch(() => undefined);
  if (!st) {
    throw new KloopError(`--model: unknown model "${spec}" (presets: ${PRESET_NAMES.join(', ')}; or a config.json path)`);
  }
  const path = st.isDirectory() ? join(spec, 'config.json') : spec;
  const name = st.isDirectory() ? basename(spec.replace(/\/+$/, '')) : basename(dirname(path)) || basename(path);
  if (path.endsWith('.json')) {
    noTokenizer(`${path} is a config.json`);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      throw new KloopError(`--model: ${path}: ${(e as Error).message}`);
    }
    try {
      return shapeFromHFConfig(json, typeof (json as { _name_or_path?: unknown })._name_or_path === 'string' ? undefined : name);
    } catch (e) {
      throw new KloopError(`--model: ${path}: ${(e as Error).message}`);
    }
  }
  if (opts.loadModelConfig) {
    const cfg = await opts.loadModelConfig(path, tokenizer);
    return shapeFromModelConfig(cfg, basename(path).replace(/\.[^.]*$/, ''));
  }
  if (path.endsWith('.bin')) return shapeFromLlama2cHeader(await readFile(path), basename(path).replace(/\.bin$/, ''));
  throw new KloopError(`--model: ${path}: not a config.json or a model file the timing model can read`);
}

export async function timingModelCommand(argv: string[], opts: TimingModelCommandOptions = {}): Promise<number> {
  const out = opts.stdout ?? ((t: string) => void process.stdout.write(t));
  const err = opts.stderr ?? ((t: string) => void process.stderr.write(t));
  const f = parseTimingModelFlags(argv);
  if (f.help) {
    out(TIMING_MODEL_USAGE);
    return 0;
  }
  if (f.validate) {
    const cases = validationCases();
    out(f.json ? JSON.stringify({ cases }, null, 2) + '\n' : formatValidation(cases));
    return 0;
  }
  const shape = await resolveModel(f.model, opts, f.tokenizer);
  const workload = { batch: f.batch, context: f.context, outputTokens: f.outputTokens };
  const convention = flopConvention(f.flops);
  const report = timingReport(shape, workload, { sockets: f.sockets, flopConvention: convention });
  out(f.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
  if (f.svg) {
    const svg = renderPlotSvg(shape, workload, { predict: { flopConvention: convention } });
    await mkdir(dirname(f.svg), { recursive: true }).catch(() => undefined);
    try {
      await writeFile(f.svg, svg);
    } catch (e) {
      throw new KloopError(`--svg: ${f.svg}: ${(e as Error).message}`);
    }
    (f.json ? err : out)(`wrote ${f.svg}\n`);
  }
  return 0;
}
