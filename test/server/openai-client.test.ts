/**
 * `kloop serve` against the official `openai` client, on 127.0.0.1: completions and chat
 * completions, streaming and not, checked against `kloop generate` (the CPU reference mode for
 * most cases; one case in the default looped mode on the GPU).
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GenerateJson, type ServerProcess, kloopGenerate, startServer } from './helpers.ts';

const PROMPT = 'Once upon a time';

const client = (url: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });

describe('kloop serve (reference mode) with the openai client', () => {
  let srv: ServerProcess;
  let openai: OpenAI;
  let ref: GenerateJson;
  beforeAll(async () => {
    [srv, ref] = await Promise.all([startServer(['--mode', 'reference']), kloopGenerate(['--mode', 'reference', '--prompt', PROMPT, '--max-tokens', '40'])]);
    openai = client(srv.url);
  });
  afterAll(async () => {
    expect(await srv?.stop()).toBe(0);
  });

  it('lists the model', async () => {
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['stories260K']);
    expect((await openai.models.retrieve('stories260K')).owned_by).toBe('kloop');
  });

  it('a greedy completion is the text of kloop generate, with its token counts', async () => {
    const r = await openai.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 40, temperature: 0 });
    expect(r.object).toBe('text_completion');
    expect(r.choices[0]!.text).toBe(ref.text);
    expect(r.choices[0]!.finish_reason).toBe(ref.stoppedAt === 'eos' ? 'stop' : 'length');
    expect(r.usage).toEqual({ prompt_tokens: ref.promptTokens.length, completion_tokens: ref.tokens.length, total_tokens: ref.promptTokens.length + ref.tokens.length });
  });

  it('a streamed completion gives the same text, ends with finish_reason and the usage chunk', async () => {
    const stream = await openai.completions.create({
      model: 'stories260K',
      prompt: PROMPT,
      max_tokens: 40,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage;
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.text;
        finishes.push(ch.finish_reason);
      }
    }
    expect(chunks).toBeGreaterThan(10);
    expect(text).toBe(ref.text);
    expect(finishes.at(-1)).toBe('length');
    expect(finishes.slice(0, -1).every((f) => f === null)).toBe(true);
    expect(usage).toEqual({ prompt_tokens: ref.promptTokens.length, completion_tokens: 40, total_tokens: ref.promptTokens.length + 40 });
  });

  it('a stop string ends the text before it (stream and not); finish_reason stop', async () => {
    const cut = ref.text.indexOf('Lily');
    expect(cut).toBeGreaterThan(0);
    const r = await openai.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 40, temperature: 0, stop: ['Lily', 'zzz'] });
    expect(r.choices[0]!.text).toBe(ref.text.slice(0, cut));
    expect(r.choices[0]!.finish_reason).toBe('stop');
    expect(r.usage!.completion_tokens).toBeLessThan(40);
    const stream = await openai.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 40, temperature: 0, stop: 'Lily', stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const c of stream) for (const ch of c.choices) {
      text += ch.text;
      finish = ch.finish_reason ?? finish;
    }
    expect(text).toBe(ref.text.slice(0, cut));
    expect(finish).toBe('stop');
  });

  it('max_tokens ends with finish_reason length; token-id prompts work', async () => {
    const r = await openai.completions.create({ model: 'stories260K', prompt: ref.promptTokens, max_tokens: 5, temperature: 0 });
    expect(r.choices[0]!.finish_reason).toBe('length');
    expect(r.usage!.completion_tokens).toBe(5);
    expect(ref.text.startsWith(r.choices[0]!.text)).toBe(true);
  });

  it('sampling with a seed is reproducible; top_p and temperature are honoured', async () => {
    const ask = (seed: number) => openai.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 24, temperature: 1.2, top_p: 0.95, seed });
    const [a, b, c] = await Promise.all([ask(7), ask(7), ask(8)]);
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
    expect([a.choices[0]!.text, c.choices[0]!.text].every((t) => t.length > 0)).toBe(true);
    // Another seed, other draws: 24 tokens sampled at temperature 1.2 do not all come out the same.
    expect(c.choices[0]!.text).not.toBe(a.choices[0]!.text);
    // The same seed through the CLI gives the same text.
    const cli = await kloopGenerate(['--mode', 'reference', '--prompt', PROMPT, '--max-tokens', '24', '--temperature', '1.2', '--top-p', '0.95', '--seed', '7']);
    expect(a.choices[0]!.text).toBe(cli.text);
  });

  it('chat completions (plain template) stream and not, with the same text', async () => {
    const messages = [
      { role: 'system' as const, content: 'You tell stories.' },
      { role: 'user' as const, content: 'Tell me about a cat.' },
    ];
    const r = await openai.chat.completions.create({ model: 'stories260K', messages, max_tokens: 24, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    const msg = r.choices[0]!.message;
    expect(msg.role).toBe('assistant');
    expect(msg.content!.length).toBeGreaterThan(0);
    expect(msg.content).not.toContain('\nUser:');
    expect(['stop', 'length']).toContain(r.choices[0]!.finish_reason);
    // The plain template's prompt, through the CLI: the same greedy text and prompt size.
    const prompt = 'System: You tell stories.\nUser: Tell me about a cat.\nAssistant:';
    const cli = await kloopGenerate(['--mode', 'reference', '--prompt', prompt, '--max-tokens', '24']);
    expect(r.usage!.prompt_tokens).toBe(cli.promptTokens.length);
    // The CLI has no chat stop strings: its text up to the plain template's "\nUser:" is the answer.
    expect(msg.content).toBe(cli.text.split('\nUser:')[0]);

    const stream = await openai.chat.completions.create({ model: 'stories260K', messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role: string | undefined;
    let usage;
    for await (const c of stream) {
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        role ??= ch.delta.role;
        text += ch.delta.content ?? '';
      }
    }
    expect(role).toBe('assistant');
    expect(text).toBe(msg.content);
    expect(usage).toEqual(r.usage);
  });

  it('errors come back as OpenAI errors with their status', async () => {
    await expect(openai.completions.create({ model: 'gpt-4', prompt: 'x' })).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    await expect(openai.completions.create({ model: 'stories260K', prompt: 'x', max_tokens: -3 })).rejects.toMatchObject({ status: 400, param: 'max_tokens' });
    await expect(openai.chat.completions.create({ model: 'stories260K', messages: [] })).rejects.toMatchObject({ status: 400, param: 'messages' });
  });
});

describe('kloop serve in the default looped mode (WebGPU; lavapipe without a GPU)', () => {
  it('a greedy completion and a streamed chat agree with the reference', { timeout: 600_000 }, async () => {
    const [srv, ref] = await Promise.all([startServer([], 540_000), kloopGenerate(['--mode', 'reference', '--prompt', PROMPT, '--max-tokens', '40'])]);
    try {
      expect(srv.stderr()).toMatch(/looped on /);
      const openai = client(srv.url);
      const r = await openai.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 40, temperature: 0 });
      expect(r.choices[0]!.text).toBe(ref.text);
      expect(r.usage!.completion_tokens).toBe(ref.tokens.length);
      const stream = await openai.completions.create({ model: 'stories260K', prompt: PROMPT, max_tokens: 40, temperature: 0, stream: true });
      let text = '';
      for await (const c of stream) text += c.choices[0]?.text ?? '';
      expect(text).toBe(ref.text);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
  });
});
