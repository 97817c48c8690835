/**
 * Help texts and flags that must not be silently ignored: `kloop help CMD`, the default model's
 * places, flags that would have no effect, --tokenizer for bench and timing-model, and the checks
 * bench makes before any device work.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelsDir } from '../helpers/paths.ts';
import { expectOneLineError, kloop } from './kloop.ts';

const stories = path.join(modelsDir, 'stories260K', 'stories260K.bin');
const tok = path.join(modelsDir, 'stories260K', 'tok512.bin');
const NO_ADAPTER = 'no-such-adapter-anywhere';
/** A folder that is never created: paths in it do not exist (removed afterwards all the same). */
const missing = path.join(tmpdir(), `kloop-flags-missing-${process.pid}`);

let tmp: string;
/** stories260K.bin alone in a folder: no tokenizer beside it. */
let bare: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'kloop-flags-'));
  await mkdir(path.join(tmp, 'bare'));
  bare = path.join(tmp, 'bare', 'model.bin');
  await copyFile(stories, bare);
  await writeFile(path.join(tmp, 'file'), 'not a folder\n');
  await mkdir(path.join(tmp, 'folder.gguf'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await rm(missing, { recursive: true, force: true });
});

describe('help', () => {
  it('kloop help CMD prints the help of CMD, as kloop CMD --help does', async () => {
    const names = ['generate', 'convert', 'bench', 'timing-model'];
    const runs = await Promise.all(names.flatMap((c) => [kloop(['help', c]), kloop([c, '--help'])]));
    names.forEach((c, i) => {
      const [viaHelp, viaFlag] = [runs[2 * i]!, runs[2 * i + 1]!];
      expect(viaHelp.code).toBe(0);
      expect(viaHelp.stdout).toMatch(new RegExp(`^usage: kloop ${c} `));
      expect(viaHelp.stdout).toBe(viaFlag.stdout);
    });
  });

  it('kloop help with an unknown command is a one-line error', async () => {
    expectOneLineError(await kloop(['help', 'frobnicate']), /frobnicate: unknown command \(one of generate, .*timing-model\)/);
  });

  it('the top-level help says convert writes GGUF and synthetic models, and where the default model is found', async () => {
    const r = await kloop(['--help']);
    expect(r.code).toBe(0);
    const convert = /\n {2}convert {8}(.*\n(?: {17}.*\n)*)/.exec(r.stdout)?.[1] ?? '';
    expect(convert).toMatch(/Hugging Face folder/);
    expect(convert).toMatch(/GGUF/);
    expect(convert).toMatch(/f32\|f16\|q8_0\|q4_0\|q4_k\|q6_k/);
    expect(convert).toMatch(/--shape/);
    const env = r.stdout.slice(r.stdout.indexOf('environment:'));
    const order = ['$KLOOP_MODELS/stories260K/', 'weights/stories260K/', '~/.cache/kloop/models/', '../shared/models/stories260K/', 'downloaded'];
    const at = order.map((s) => env.indexOf(s));
    expect(at.every((i) => i >= 0), env).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
  });

  it('generate --help gives the default model places in order; bench and timing-model list --tokenizer', async () => {
    const [gen, bench, timing] = await Promise.all([kloop(['generate', '--help']), kloop(['bench', '--help']), kloop(['timing-model', '--help'])]);
    const model = /--model PATH(.*\n(?: {28}.*\n)*)/.exec(gen.stdout)?.[1] ?? '';
    const at = ['$KLOOP_MODELS/stories260K/', 'weights/', '../shared/models/', 'downloaded'].map((s) => model.indexOf(s));
    expect(at.every((i) => i >= 0), model).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    expect(bench.stdout).toMatch(/\n {2}--tokenizer PATH +tokenizer of a llama2\.c --model/);
    expect(timing.stdout).toMatch(/\n {2}--tokenizer PATH +tokenizer of a llama2\.c --model/);
  });
});

describe('flags that would be ignored are one-line errors, before any work', () => {
  const cases: [string, string[], RegExp][] = [
    ['convert --seed without --shape', ['convert', '--model', stories, '--seed', '7', '--out', path.join(missing, 'dir')], /^kloop: --seed: only a synthetic --shape model/],
    ['convert --shape with --tokenizer', ['convert', '--shape', 'stories15M', '--tokenizer', tok, '--out', path.join(missing, 'x.gguf')], /^kloop: --tokenizer: a synthetic --shape model .*takes no tokenizer/],
    ['bench --seed without --shape', ['bench', '--seed', '7', '--adapter', NO_ADAPTER], /^kloop: --seed: only a synthetic --shape model/],
    ['bench --gguf without a llama.cpp peer', ['bench', '--gguf', path.join(modelsDir, 'stories260K', 'stories260K.gguf'), '--adapter', NO_ADAPTER], /^kloop: --gguf: only the llama\.cpp peer .*--peers or --llama-gpu/],
    ['bench --gguf with --shape', ['bench', '--shape', 'stories15M', '--peers', '--gguf', 'x.gguf', '--adapter', NO_ADAPTER], /^kloop: --gguf: a synthetic --shape model has no GGUF/],
    ['bench --shape with --tokenizer', ['bench', '--shape', 'stories15M', '--tokenizer', tok, '--adapter', NO_ADAPTER], /^kloop: --tokenizer: a synthetic --shape model/],
    ['timing-model --validate --svg', ['timing-model', '--validate', '--svg', path.join(missing, 'plot.svg')], /^kloop: --svg: --validate writes no plot/],
    ['timing-model --validate --model', ['timing-model', '--validate', '--model', 'llama-3.2-1b'], /^kloop: --model: not used by --validate/],
    ['timing-model --tokenizer with a preset', ['timing-model', '--model', 'llama-3.2-1b', '--tokenizer', tok], /^kloop: --tokenizer: only a llama2\.c checkpoint .*llama-3\.2-1b is a preset/],
    ['generate --adapter ""', ['generate', '--adapter', '', '--max-tokens', '1'], /^kloop: --adapter: empty value$/],
    ['generate --adapter=', ['generate', '--adapter=', '--max-tokens', '1'], /^kloop: --adapter: empty value$/],
    ['generate --draft-model ""', ['generate', '--mode', 'reference', '--draft-model', '', '--max-tokens', '1'], /^kloop: --draft-model: empty value$/],
    ['logits --adapter ""', ['logits', '--tokens', '1', '--out', path.join(missing, 'x.f32'), '--adapter', ''], /^kloop: --adapter: empty value$/],
    ['devices --adapter=', ['devices', '--adapter='], /^kloop: --adapter: empty value$/],
    ['encode --model ""', ['encode', '--text', 'hi', '--model', ''], /^kloop: --model: empty value$/],
    ['bench --tokenizer PATH with a GGUF model', ['bench', '--model', path.join(modelsDir, 'stories260K', 'stories260K.gguf'), '--tokenizer', tok, '--adapter', NO_ADAPTER], /^kloop: --tokenizer: only a llama2\.c checkpoint/],
  ];
  it.concurrent.each(cases)('%s', async (_name, args, what) => {
    expectOneLineError(await kloop(args), what);
  });

  it('an empty --prompt or --text is still a text (BOS alone)', async () => {
    const [gen, enc] = await Promise.all([
      kloop(['generate', '--mode', 'reference', '--prompt', '', '--max-tokens', '1', '--json']),
      kloop(['encode', '--text', '', '--model', stories]),
    ]);
    expect(gen.code, gen.stderr).toBe(0);
    expect(JSON.parse(gen.stdout).promptTokens).toEqual([1]);
    expect(enc.code, enc.stderr).toBe(0);
    expect(JSON.parse(enc.stdout)).toEqual([1]);
  });

  it('convert --out naming an existing file (not .gguf) says it is not a folder', async () => {
    const file = path.join(tmp, 'file');
    expectOneLineError(await kloop(['convert', '--model', stories, '--out', file]), new RegExp(`--out ${file}: exists and is not a folder \\(--out takes a folder .* or a FILE\\.gguf\\)`));
    const dir = path.join(tmp, 'folder.gguf');
    expectOneLineError(await kloop(['convert', '--model', stories, '--out', dir]), new RegExp(`--out ${dir}: is a folder`));
  });
});

describe('notes and warnings on stderr (the command still runs)', () => {
  it('generate with --temperature 0 notes that --top-k/--top-p/--seed are ignored (greedy)', async () => {
    const gen = (flags: string[]) => kloop(['generate', '--mode', 'reference', '--max-tokens', '2', '--json', ...flags]);
    const [explicit, byDefault, sampled] = await Promise.all([
      gen(['--temperature', '0', '--top-k', '5', '--seed', '7']),
      gen(['--top-p', '0.5']),
      gen(['--temperature', '0.8', '--top-k', '5', '--seed', '7']),
    ]);
    for (const r of [explicit, byDefault, sampled]) expect(r.code, r.stderr).toBe(0);
    expect(explicit.stderr).toBe('kloop: note: --top-k, --seed ignored: --temperature 0 is greedy decoding\n');
    expect(byDefault.stderr).toBe('kloop: note: --top-p ignored: --temperature 0 (the default) is greedy decoding\n');
    expect(sampled.stderr).toBe('');
    expect(JSON.parse(explicit.stdout).tokens).toEqual(JSON.parse(byDefault.stdout).tokens);
  });

  it('KLOOP_MODELS naming no folder is a warning naming it, then the default model is found elsewhere', async () => {
    const noFolder = path.join(tmp, 'no-such-models');
    const file = path.join(tmp, 'file');
    const gen = ['generate', '--mode', 'reference', '--max-tokens', '2', '--json'];
    const [a, b, ok] = await Promise.all([
      kloop(gen, undefined, { KLOOP_MODELS: noFolder }),
      kloop(['encode', '--text', 'hi'], undefined, { KLOOP_MODELS: file }),
      kloop(gen),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toBe(`kloop: warning: KLOOP_MODELS=${noFolder} is not a folder; looking for the default model elsewhere\n`);
    expect(JSON.parse(a.stdout).model).toBe('stories260K');
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(new RegExp(`^kloop: warning: KLOOP_MODELS=${file} is not a folder`));
    expect(ok.stderr).toBe('');
  });
});

describe('--tokenizer for bench and timing-model; bench checks its flags before the device', () => {
  it('timing-model reads a llama2.c checkpoint without a tokenizer beside it given --tokenizer', async () => {
    const [without, withTok] = await Promise.all([
      kloop(['timing-model', '--model', bare, '--sockets', '1', '--json']),
      kloop(['timing-model', '--model', bare, '--tokenizer', tok, '--sockets', '1', '--json']),
    ]);
    expectOneLineError(without, /no tokenizer found beside the model.*pass --tokenizer/);
    expect(withTok.code, withTok.stderr).toBe(0);
    const j = JSON.parse(withTok.stdout);
    expect(j.model.params).toBeGreaterThan(2e5);
    expect(j.model.params).toBeLessThan(3e5);
  });

  // An adapter that does not exist: a check made after opening the device would fail on it first.
  it.concurrent.each([
    ['--prompt-tokens over the context', ['--model', stories, '--prompt-tokens', '513'], /^kloop: --prompt-tokens 513: must be an integer in \[1, 512\]$/],
    ['a missing --gguf', ['--model', stories, '--peers', '--gguf', path.join(missing, 'x.gguf')], /^kloop: --gguf \S+x\.gguf: no such file$/],
    ['a model loaded with --tokenizer', ['--model', '<bare>', '--tokenizer', tok, '--prompt-tokens', '100000'], /^kloop: --prompt-tokens 100000: must be an integer in \[1, 512\]$/],
  ] as [string, string[], RegExp][])('bench: %s', async (_name, args, what) => {
    expectOneLineError(await kloop(['bench', ...args.map((a) => (a === '<bare>' ? bare : a)), '--modes', 'per-op', '--adapter', NO_ADAPTER]), what);
  });
});
