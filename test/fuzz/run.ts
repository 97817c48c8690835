/**
 * The fuzz runner: loads one variant in-process under a time bound and classifies the outcome.
 */
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KloopError } from '../../src/errors.ts';
import { convertToHF, loadLlama2cTokenizer, loadModel } from '../../src/loader/index.ts';
import { dequantize, matrixBytes } from '../../src/loader/quant.ts';
import type { LoadedModel, Matrix, Tokenizer } from '../../src/loader/types.ts';
import { modelsDir } from '../helpers/paths.ts';
import {
  type Target, type Variant, ggufMutators, ggufQuantMutators, hfConfigMutators, hfTokenizerMutators, llama2cModelMutators, llama2cTokMutators,
  safetensorsMutators,
} from './corpus.ts';
import { llama2cTokRecords } from './formats.ts';

/**
 * A variant hangs when loading it uses more than HANG_MS of CPU time (a busy loop; CPU time, so
 * that a loaded CI machine does not turn slow-but-finite loads into hangs), or does not settle
 * within WALL_MS of wall-clock time (a promise that never resolves).
 */
export const HANG_MS = Number(process.env.KLOOP_FUZZ_HANG_MS ?? 3000);
export const WALL_MS = Number(process.env.KLOOP_FUZZ_WALL_MS ?? 30_000);
/** A variant whose loading raises RSS or ArrayBuffer memory by more than this has over-allocated. */
export const MEM_LIMIT = 512 * 2 ** 20;

export type Outcome = 'clear-error' | 'loaded' | 'crash' | 'unclear-error' | 'hang' | 'bad-load' | 'memory';
export const FAILURES: Outcome[] = ['crash', 'unclear-error', 'hang', 'bad-load', 'memory'];

export interface Result {
  v: Variant;
  outcome: Outcome;
  detail: string;
  /** Wall-clock and CPU milliseconds. */
  ms: number;
  cpuMs: number;
  memDelta: number;
}

const TEXTS = ['Once upon a time', '', 'héllo wörld 日本語 🙂', 'a\u0000b\tc\n', '  two  spaces  ', '<s> </s> <unk>', 'x'.repeat(200), '\ud800'];

/** Use a loaded tokenizer the way the engine does; ids must stay inside `vocab`. */
function exerciseTokenizer(tok: Tokenizer, vocab: number): string | null {
  for (const text of TEXTS) {
    const ids = tok.encode(text);
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= vocab) return `encode(${JSON.stringify(text)}) gave id ${id} outside 0..${vocab - 1}`;
    if (typeof tok.decode(ids) !== 'string') return 'decode did not return a string';
    let prev = ids[0] ?? 1;
    for (const id of ids.slice(1)) {
      if (typeof tok.decodeStep(prev, id) !== 'string') return 'decodeStep did not return a string';
      prev = id;
    }
    tok.flush?.();
  }
  for (let id = 0; id < Math.min(vocab, 600); id++) tok.decodeStep(id === 0 ? 1 : id - 1, id);
  tok.flush?.();
  return null;
}

/** A loaded model must be self-consistent, finite, and no larger than its files allow. */
function checkModel(m: LoadedModel, fileBytes: number): string | null {
  const c = m.config;
  const w = m.weights;
  const arrays: [string, Matrix, number][] = [
    ['tokEmb', w.tokEmb, c.vocabSize * c.dim],
    ['finalNorm', w.finalNorm, c.dim],
    ['wcls', w.wcls, c.vocabSize * c.dim],
  ];
  if (w.layers.length !== c.nLayers) return `${w.layers.length} layers, config says ${c.nLayers}`;
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  w.layers.forEach((l, i) => {
    arrays.push(
      [`wq${i}`, l.wq, q * c.dim], [`wk${i}`, l.wk, kv * c.dim], [`wv${i}`, l.wv, kv * c.dim], [`wo${i}`, l.wo, c.dim * q],
      [`w1${i}`, l.w1, c.hiddenDim * c.dim], [`w2${i}`, l.w2, c.dim * c.hiddenDim], [`w3${i}`, l.w3, c.hiddenDim * c.dim],
      [`attnNorm${i}`, l.attnNorm, c.dim], [`ffnNorm${i}`, l.ffnNorm, c.dim],
    );
  });
  let bytes = 0;
  const seen = new Set<Matrix>();
  for (const [name, m, n] of arrays) {
    if (!seen.has(m)) bytes += matrixBytes(m);
    seen.add(m);
    const a = dequantize(m);
    if (a.length !== n) return `${name} has ${a.length} values, the config implies ${n}`;
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return `${name} holds a non-finite value at ${i} (loaded silently)`;
  }
  if (bytes > 2 * fileBytes + 4096) return `weights take ${bytes} bytes, more than twice the ${fileBytes} bytes of the files`;
  return exerciseTokenizer(m.tokenizer, c.vocabSize);
}

class Hang extends Error {}

export const safeName = (s: string) => `base-${s.replace(/[^A-Za-z0-9.]+/g, '_')}`;

function timeBound<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Hang(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export async function runVariant(v: Variant, root: string, baseDir: string): Promise<Result> {
  const dir = join(root, `v${v.index}`);
  await mkdir(dir);
  let fileBytes = 0;
  for (const [name, bytes] of Object.entries(v.files)) {
    if (bytes === null) continue;
    fileBytes += bytes.length;
    if (bytes === v.target.base[name]) await link(join(baseDir, safeName(v.target.name), name), join(dir, name));
    else await writeFile(join(dir, name), bytes);
  }
  const t = v.target;
  const mem0 = process.memoryUsage();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let outcome: Outcome;
  let detail = '';
  try {
    const work = (async () => {
      if (t.call === 'loadModel') {
        const m = await loadModel(join(dir, t.entry), t.tokenizer ? { tokenizer: join(dir, t.tokenizer) } : {});
        return checkModel(m, fileBytes);
      }
      const tok = await loadLlama2cTokenizer(join(dir, t.entry));
      return exerciseTokenizer(tok, tok.vocabSize);
    })();
    const problem = await timeBound(work, WALL_MS);
    if (problem) [outcome, detail] = ['bad-load', problem];
    else if (v.expect === 'error') [outcome, detail] = ['bad-load', 'a corrupt file loaded without an error'];
    else outcome = 'loaded';
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof Hang) [outcome, detail] = ['hang', msg];
    else if (!(e instanceof KloopError)) [outcome, detail] = ['crash', `${(e as Error)?.name ?? typeof e}: ${msg}\n${(e as Error)?.stack ?? ''}`];
    else if (msg.includes('\n') || !msg.includes(dir)) [outcome, detail] = ['unclear-error', `message is not one line naming the file: ${JSON.stringify(msg)}`];
    else [outcome, detail] = ['clear-error', msg];
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const mem1 = process.memoryUsage();
  const memDelta = Math.max(mem1.rss - mem0.rss, mem1.arrayBuffers - mem0.arrayBuffers);
  if (cpuMs > HANG_MS && outcome !== 'hang') [outcome, detail] = ['hang', `used ${cpuMs.toFixed(0)} ms of CPU time (bound ${HANG_MS} ms)`];
  if (memDelta > MEM_LIMIT) [outcome, detail] = ['memory', `memory grew by ${(memDelta / 2 ** 20).toFixed(0)} MiB`];
  await rm(dir, { recursive: true, force: true });
  // Keep the description, not the (megabyte) file contents.
  return { v: { ...v, files: {} }, outcome, detail, ms, cpuMs, memDelta };
}


/** The fuzz targets over the real files (and an HF folder converted from stories260K), with their unmodified files written under `root`. */
export async function makeTargets(root: string, scale = 1): Promise<Target[]> {
  const targets: Target[] = [];
  const read = async (p: string) => new Uint8Array(await readFile(join(modelsDir, p)));
  const stories = await read('stories260K/stories260K.bin');
  const tok512 = await read('stories260K/tok512.bin');
  const aidreams = await read('aidreams260K/aidreams260K.bin');
  const aidTok = await read('aidreams260K/tok512.bin');
  const llamaTok = await read('llama2-tokenizer/tokenizer.bin');
  // Llama 2's first 512 tokens: a model of 512 tokens takes exactly 512 (the whole file is another model's).
  const llamaTok512 = llamaTok.slice(0, llama2cTokRecords(llamaTok).records[511]!.end);
  const gguf = await read('stories260K/stories260K.gguf');
  const hfDir = join(root, 'hf-source');
  await convertToHF(await loadModel(join(modelsDir, 'stories260K/stories260K.bin')), hfDir);
  const hf = {
    'config.json': new Uint8Array(await readFile(join(hfDir, 'config.json'))),
    'model.safetensors': new Uint8Array(await readFile(join(hfDir, 'model.safetensors'))),
    'tokenizer.json': new Uint8Array(await readFile(join(hfDir, 'tokenizer.json'))),
  };
  const n = (k: number) => Math.max(1, Math.round(k * scale));
  const storiesFiles = { 'stories260K.bin': stories, 'tok512.bin': tok512 };
  const aidFiles = { 'aidreams260K.bin': aidreams, 'tok512.bin': aidTok };
  targets.push(
    { name: 'stories260K.bin', count: n(200), base: storiesFiles, mutated: 'stories260K.bin', call: 'loadModel', entry: 'stories260K.bin', mutators: llama2cModelMutators(stories) },
    { name: 'stories260K/tok512.bin', count: n(130), base: storiesFiles, mutated: 'tok512.bin', call: 'loadModel', entry: 'stories260K.bin', mutators: llama2cTokMutators(tok512, 512) },
    { name: 'aidreams260K.bin', count: n(70), base: aidFiles, mutated: 'aidreams260K.bin', call: 'loadModel', entry: 'aidreams260K.bin', mutators: llama2cModelMutators(aidreams) },
    { name: 'aidreams260K/tok512.bin', count: n(40), base: aidFiles, mutated: 'tok512.bin', call: 'loadModel', entry: 'aidreams260K.bin', mutators: llama2cTokMutators(aidTok, 512) },
    {
      name: 'llama2 tokenizer.bin, its first 512 tokens (with stories260K)', count: n(80), base: { 'stories260K.bin': stories, 'tokenizer.bin': llamaTok512 }, mutated: 'tokenizer.bin',
      call: 'loadModel', entry: 'stories260K.bin', tokenizer: 'tokenizer.bin', mutators: llama2cTokMutators(llamaTok512, 512),
    },
    { name: 'llama2 tokenizer.bin (alone)', count: n(24), base: { 'tokenizer.bin': llamaTok }, mutated: 'tokenizer.bin', call: 'tokenizer', entry: 'tokenizer.bin', mutators: llama2cTokMutators(llamaTok) },
    { name: 'stories260K.gguf', count: n(260), base: { 'stories260K.gguf': gguf }, mutated: 'stories260K.gguf', call: 'loadModel', entry: 'stories260K.gguf', mutators: ggufMutators(gguf) },
    { name: 'HF config.json', count: n(70), base: hf, mutated: 'config.json', call: 'loadModel', entry: '', mutators: hfConfigMutators(hf['config.json']) },
    { name: 'HF tokenizer.json', count: n(70), base: hf, mutated: 'tokenizer.json', call: 'loadModel', entry: '', mutators: hfTokenizerMutators(hf['tokenizer.json'], 512) },
    { name: 'HF model.safetensors', count: n(110), base: hf, mutated: 'model.safetensors', call: 'loadModel', entry: '', mutators: safetensorsMutators(hf['model.safetensors']) },
  );
  // llama.cpp's quantized files: the generic GGUF corruptions and ones aimed at their blocks.
  for (const name of ['stories260K-Q4_0.gguf', 'stories260K-Q4_K_M.gguf', 'synthetic-k512-Q4_K_M.gguf', 'synthetic-k512-Q6_K.gguf']) {
    const q = await read(`quant/${name}`);
    const aimed = ggufQuantMutators(q);
    targets.push({ name, count: n(56), base: { [name]: q }, mutated: name, call: 'loadModel', entry: name, mutators: [...aimed, ...aimed, ...aimed, ...ggufMutators(q)] });
  }
  // Unmodified files, hard-linked into the variant folders.
  for (const t of targets) {
    await mkdir(join(root, safeName(t.name)));
    for (const [name, bytes] of Object.entries(t.base)) await writeFile(join(root, safeName(t.name), name), bytes);
  }
  return targets;
}
