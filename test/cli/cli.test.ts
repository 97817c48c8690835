/**
 * The `kloop` command run as a user runs it (a child process through tsx), checked against
 * the llama2.c fixtures in ../shared/fixtures.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesDir, modelsDir } from '../helpers/paths.ts';
import { expectOneLineError, kloop } from './kloop.ts';

interface Fixture {
  prompt: string;
  prompt_tokens: number[];
  tokens: number[];
  positions: number;
  vocab_size: number;
}
const fixture = async (name: string): Promise<Fixture> =>
  JSON.parse(await readFile(path.join(fixturesDir, 'stories260K', `${name}.json`), 'utf8')) as Fixture;

const stories = path.join(modelsDir, 'stories260K', 'stories260K.bin');
const aidreams = path.join(modelsDir, 'aidreams260K', 'aidreams260K.bin');

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'kloop-cli-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('kloop generate (reference)', () => {
  it('--json from BOS alone gives the first 20 greedy tokens of bos_only, with every field', async () => {
    const fx = await fixture('bos_only');
    const r = await kloop(['generate', '--mode', 'reference', '--json', '--max-tokens', '20']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(Object.keys(j).sort()).toEqual(['adapter', 'mode', 'model', 'promptTokens', 'stats', 'stoppedAt', 'text', 'tokens', 'weightTypes']);
    expect(j.model).toBe('stories260K');
    expect(j.weightTypes).toBe('f32 x 36');
    expect(j.mode).toBe('reference');
    expect(j.adapter).toEqual({ vendor: 'cpu', architecture: 'reference', description: 'CPU reference (float64)' });
    expect(j.promptTokens).toEqual(fx.prompt_tokens);
    expect(j.tokens).toEqual(fx.tokens.slice(fx.prompt_tokens.length, fx.prompt_tokens.length + 20));
    expect(j.text).toMatch(/^Once upon a time, there was a little girl named Lily\./);
    expect(j.stoppedAt).toBe('max-tokens');
    expect(Object.keys(j.stats).sort()).toEqual(
      ['deviceBytes', 'dispatchesPerToken', 'fallbacks', 'msPerToken', 'submitsPerToken', 'tokensPerDispatch', 'tokensPerSecond', 'workgroups',
        'prefillTokensPerSecond', 'timeToFirstTokenMs', 'prefillDispatches'].sort(),
    );
    expect(j.stats.deviceBytes).toBe(0); // the reference holds nothing on a device
    expect(j.stats.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(j.stats.prefillTokensPerSecond).toBeGreaterThan(0);
    expect(j.stats.tokensPerSecond).toBeGreaterThan(0);
    expect(j.stats.msPerToken).toBeCloseTo(1000 / j.stats.tokensPerSecond, 6);
    expect(j.stats.dispatchesPerToken).toBe(0);
    expect(j.stats.submitsPerToken).toBe(0);
    expect(j.stats.fallbacks).toBe(0);
    expect(j.stats.tokensPerDispatch).toBe(1);
  });

  it('streams the prompt and its greedy continuation (once_upon_a_time), stats on stderr', async () => {
    const fx = await fixture('once_upon_a_time');
    const n = fx.tokens.length - fx.prompt_tokens.length;
    const [json, text] = await Promise.all([
      kloop(['generate', '--mode', 'reference', '--json', '--prompt', fx.prompt, '--max-tokens', String(n)]),
      kloop(['generate', '--mode', 'reference', '--prompt', fx.prompt, '--max-tokens', String(n)]),
    ]);
    expect(json.code).toBe(0);
    const j = JSON.parse(json.stdout);
    expect(j.promptTokens).toEqual(fx.prompt_tokens);
    expect(j.tokens).toEqual(fx.tokens.slice(fx.prompt_tokens.length));
    expect(text.code).toBe(0);
    expect(text.stdout).toBe(`${fx.prompt}${j.text}\n`);
    expect(text.stderr).toMatch(new RegExp(`stories260K reference on CPU reference \\(float64\\): ${n} tokens .* tok/s, .* ms/token`));
  });
});

describe('kloop generate on a quantized GGUF (looped, packed weights on the device)', () => {
  it('names the encodings and the device bytes, and continues as the fixture does', async () => {
    const q = path.join(modelsDir, 'quant', 'stories260K-Q4_0.gguf');
    const fx = JSON.parse(readFileSync(path.join(fixturesDir, 'quant', 'stories260K-Q4_0.json'), 'utf8')) as { prompt_tokens: number[]; tokens: number[] };
    const r = await kloop(['generate', '--model', q, '--prompt', 'Once upon a time', '--json', '--max-tokens', '24', '--context', '256']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.weightTypes).toBe('q4_0 x 31, f16 x 5, q8_0 x 1');
    expect(j.tokens).toEqual(fx.tokens.slice(fx.prompt_tokens.length, fx.prompt_tokens.length + 24));
    // Weights once, packed (about 0.3 MB with the RoPE table), a 256-position KV cache (0.33 MB)
    // and activations: under the 1.1 MB the weights alone would take in float32.
    const kv = 5 * 2 * 256 * 32 * 4;
    expect(j.stats.deviceBytes).toBeGreaterThan(kv + 250_000);
    expect(j.stats.deviceBytes).toBeLessThan(1_100_000);
  }, 300_000);
});

describe('kloop logits and encode', () => {
  it('logits --mode reference equals the fixture rows (1e-5 relative per row)', async () => {
    const fx = await fixture('once_upon_a_time');
    const out = path.join(tmp, 'logits.f32');
    const ids = fx.tokens.slice(0, fx.positions);
    const r = await kloop(['logits', '--model', stories, '--mode', 'reference', '--tokens', ids.join(','), '--out', out]);
    expect(r.code).toBe(0);
    const got = new Float32Array((await readFile(out)).buffer.slice(0));
    const want = new Float32Array((await readFile(path.join(fixturesDir, 'stories260K', 'once_upon_a_time.logits.f32'))).buffer.slice(0));
    const V = fx.vocab_size;
    expect(got.length).toBe(fx.positions * V);
    expect(want.length).toBe(fx.positions * V);
    for (let p = 0; p < fx.positions; p++) {
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < V; i++) {
        diff = Math.max(diff, Math.abs(got[p * V + i]! - want[p * V + i]!));
        scale = Math.max(scale, Math.abs(want[p * V + i]!));
      }
      expect(diff / scale, `row ${p}`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('encode gives the fixtures prompt_tokens (with --model, and with a tokenizer alone)', async () => {
    const names = ['once_upon_a_time', 'quotes_newline', 'bos_only'];
    const fxs = await Promise.all(names.map(fixture));
    const tok = path.join(modelsDir, 'stories260K', 'tok512.bin');
    const runs = await Promise.all([
      ...fxs.map((fx) => kloop(['encode', '--model', stories, '--text', fx.prompt])),
      kloop(['encode', '--tokenizer', tok, '--text', fxs[1]!.prompt]),
    ]);
    runs.forEach((r) => expect(r.code, r.stderr).toBe(0));
    fxs.forEach((fx, i) => expect(JSON.parse(runs[i]!.stdout)).toEqual(fx.prompt_tokens));
    expect(JSON.parse(runs[3]!.stdout)).toEqual(fxs[1]!.prompt_tokens);
  });
});

describe('kloop errors: exit 1, one line on stderr, no stack trace', () => {
  const longPrompt = 'the dog ran to the park and '.repeat(40);
  const cases: [string, string[], RegExp][] = [
    ['unknown flag', ['generate', '--bogus', '1'], /--bogus: unknown flag/],
    ['unknown command', ['frobnicate'], /frobnicate: unknown command/],
    ['bad --temperature (not a number)', ['generate', '--temperature', 'hot'], /--temperature: expected a number, got "hot"/],
    ['bad --temperature (negative)', ['generate', '--temperature=-1'], /--temperature: must be a finite number >= 0/],
    ['bad --max-tokens', ['generate', '--max-tokens', '2.5'], /--max-tokens: expected an integer/],
    ['bad --mode', ['generate', '--mode', 'fast'], /--mode: unknown mode "fast"/],
    ['--speculate out of range', ['generate', '--speculate', '16'], /--speculate: .*15/],
    ['--tokens-per-dispatch outside looped', ['generate', '--mode', 'per-op', '--tokens-per-dispatch', '4'], /--tokens-per-dispatch: only the looped mode/],
    ['missing model file', ['generate', '--model', '/nonexistent/model.bin'], /\/nonexistent\/model\.bin: cannot open \(ENOENT\)/],
    ['prompt longer than the context', ['generate', '--model', aidreams, '--prompt', longPrompt], /prompt: \d+ tokens do not fit the context of 128/],
    ['logits without --out', ['logits', '--tokens', '1,2'], /--out: required/],
    ['logits with an empty --out', ['logits', '--tokens', '1,2', '--out', ''], /--out: empty value/],
    ['logits with a blank --out', ['logits', '--tokens', '1,2', '--out', ' '], /--out: empty value/],
    ['logits with a bad token list', ['logits', '--tokens', '1,,2', '--out', 'x.f32'], /--tokens: expected comma-separated integers/],
    ['logits with an unwritable --out', ['logits', '--mode', 'reference', '--tokens', '1', '--out', '/nonexistent/dir/x.f32'], /--out \/nonexistent\/dir\/x\.f32: cannot write \(ENOENT\)/],
  ];
  it.concurrent.each(cases)('%s', async (_name, args, what) => {
    expectOneLineError(await kloop(args), what);
  });
});

describe('kloop help and launcher', () => {
  it('bin/kloop.mjs runs the CLI; --help is per command', async () => {
    const [top, gen] = await Promise.all([kloop(['--help'], 'bin/kloop.mjs'), kloop(['generate', '--help'])]);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^usage: kloop <command>/);
    for (const c of ['generate', 'logits', 'encode', 'convert', 'devices', 'bench', 'demo', 'timing-model']) expect(top.stdout).toContain(`  ${c} `);
    expect(gen.code).toBe(0);
    expect(gen.stdout).toMatch(/^usage: kloop generate/);
    expect(gen.stdout).toContain('--tokens-per-dispatch K');
  });
});

describe('kloop generate on the GPU (WebGPU; lavapipe without a GPU)', () => {
  it('--mode per-op --json --max-tokens 8 equals bos_only, at 8L+4 dispatches per token', { timeout: 180_000 }, async () => {
    const fx = await fixture('bos_only');
    const r = await kloop(['generate', '--mode', 'per-op', '--json', '--max-tokens', '8']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.mode).toBe('per-op');
    expect(j.tokens).toEqual(fx.tokens.slice(1, 9));
    expect(j.adapter.vendor).not.toBe('cpu');
    expect(j.stats.dispatchesPerToken).toBe(8 * 5 + 4);
    expect(j.stats.submitsPerToken).toBe(1);
    expect(j.stats.fallbacks).toBe(0);
  });
});
