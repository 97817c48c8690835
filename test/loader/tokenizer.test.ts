import { describe, expect, it, beforeAll } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fixturesDir, modelsDir } from '../helpers/paths.ts';
import { loadLlama2cTokenizer, JsonTokenizer } from '../../src/loader/index.ts';

interface Fixture {
  prompt: string;
  prompt_tokens: number[];
  tokens: number[];
}
const storyFixtures = readdirSync(path.join(fixturesDir, 'stories260K'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => [f, JSON.parse(readFileSync(path.join(fixturesDir, 'stories260K', f), 'utf8')) as Fixture] as const);

function stream(tk: JsonTokenizer, ids: number[]): string {
  let s = '';
  for (let i = 1; i < ids.length; i++) s += tk.decodeStep(ids[i - 1]!, ids[i]!);
  return s + tk.flush();
}

describe('stories260K tokenizer (tok512.bin)', () => {
  let tk: JsonTokenizer;
  beforeAll(async () => {
    tk = await loadLlama2cTokenizer(path.join(modelsDir, 'stories260K/tok512.bin'));
  });

  it('has 512 tokens', () => {
    expect(tk.vocabSize).toBe(512);
  });

  it.each(storyFixtures)('encodes %s like llama2.c', (_f, fx) => {
    expect(tk.encode(fx.prompt)).toEqual(fx.prompt_tokens);
  });

  it('encodes the empty text as [BOS] and honours bos: false', () => {
    expect(tk.encode('')).toEqual([1]);
    expect(tk.encode('', { bos: false })).toEqual([]);
    expect(tk.encode('Once upon a time', { bos: false })).toEqual([403, 407, 261, 378]);
  });

  it('decodes the prompts back to their text', () => {
    for (const [, fx] of storyFixtures) expect(tk.decode(fx.prompt_tokens)).toBe(fx.prompt);
  });

  it('decodes the reference greedy run of bos_only', () => {
    const fx = storyFixtures.find(([f]) => f === 'bos_only.json')![1];
    expect(tk.decode(fx.tokens)).toMatch(/^Once upon a time, there was a little girl named Lily\. She loved to play outside in the park\./);
  });

  it.each(storyFixtures)('decodeStep streaming of %s equals decode', (_f, fx) => {
    expect(stream(tk, fx.tokens)).toBe(tk.decode(fx.tokens));
  });

  it('drops the leading space of the first piece after BOS only', () => {
    expect(tk.decodeStep(1, 403)).toBe('Once');
    expect(tk.decodeStep(403, 407)).toBe(' upon');
    tk.flush();
  });

  it('streams multi-byte UTF-8 split over byte tokens', () => {
    const text = 'naïve 😀 — 日本';
    const ids = tk.encode(text);
    expect(ids.some((id) => id >= 3 && id < 259)).toBe(true);
    expect(tk.decode(ids)).toBe(text);
    // Every step returns whole characters only: the 4-byte emoji comes out in one step.
    const pieces: string[] = [];
    for (let i = 1; i < ids.length; i++) pieces.push(tk.decodeStep(ids[i - 1]!, ids[i]!));
    pieces.push(tk.flush());
    expect(pieces.join('')).toBe(text);
    expect(pieces).toContain('😀');
    for (const p of pieces) expect(p).not.toContain('\uFFFD');
  });

  it('flushes an incomplete UTF-8 sequence as U+FFFD, like decode', () => {
    const ids = [1, 3 + 0xe2, 3 + 0x82];
    expect(tk.decodeStep(1, ids[1]!)).toBe('');
    expect(tk.decodeStep(ids[1]!, ids[2]!)).toBe('');
    // E2 82 is the start of a 3-byte character (E2 82 AC, €): one replacement character for the two.
    expect(tk.flush()).toBe('\uFFFD');
    expect(tk.decode(ids)).toBe('\uFFFD');
  });

  it('skips special tokens when decoding', () => {
    expect(tk.decode([1, 403, 2])).toBe('Once');
    expect(tk.decodeStep(403, 2)).toBe('');
    tk.flush();
  });

  it('round-trips through its tokenizer.json', () => {
    const again = new JsonTokenizer(JSON.parse(tk.toJSON()), { source: 'roundtrip', bosId: 1, eosId: 2 });
    for (const [, fx] of storyFixtures) {
      expect(again.encode(fx.prompt)).toEqual(fx.prompt_tokens);
      expect(again.decode(fx.tokens)).toBe(tk.decode(fx.tokens));
    }
  });
});

describe('aidreams260K tokenizer (its own tok512.bin)', () => {
  it('round-trips text', async () => {
    const tk = await loadLlama2cTokenizer(path.join(modelsDir, 'aidreams260K/tok512.bin'));
    expect(tk.vocabSize).toBe(512);
    const text = 'The machine dreams of electric sheep.\nIt wakes up.';
    const ids = tk.encode(text);
    expect(ids[0]).toBe(1);
    expect(tk.decode(ids)).toBe(text);
    expect(stream(tk, ids)).toBe(text);
  });
});

describe('Llama 2 tokenizer (32000 tokens, llama2.c export)', () => {
  const fx = JSON.parse(readFileSync(path.join(fixturesDir, 'tokenizer/llama2-32k.json'), 'utf8')) as {
    cases: { text: string; ids: number[] }[];
  };
  let tk: JsonTokenizer;
  beforeAll(async () => {
    tk = await loadLlama2cTokenizer(path.join(modelsDir, 'llama2-tokenizer/tokenizer.bin'));
  });

  it.each(fx.cases.map((c) => [JSON.stringify(c.text).slice(0, 40), c] as const))('encodes %s like sentencepiece', (_n, c) => {
    expect(tk.encode(c.text)).toEqual(c.ids);
  });

  it('decodes and streams the cases back to their text', () => {
    for (const c of fx.cases) {
      expect(tk.decode(c.ids)).toBe(c.text);
      expect(stream(tk, c.ids)).toBe(c.text);
    }
  });

  it('keeps U+FEFF and byte-fallback characters', () => {
    const text = '\uFEFFa 𝄞 \u0001';
    expect(tk.decode(tk.encode(text))).toBe(text);
  });
});
