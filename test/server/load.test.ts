/**
 * `kloop serve` under load, on 127.0.0.1 (reference mode, bounded counts and times): 3 rounds of
 * 32 concurrent streaming clients through the openai client, a quarter of them aborting
 * mid-stream; then a burst past the queue limit (429) and malformed requests (4xx). The server
 * must stay up, answer /v1/models, free every slot, and keep its RSS flat over the rounds.
 */
import http from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, kloopGenerate, startServer } from './helpers.ts';

const PROMPTS = ['Once upon a time', 'The little dog', 'Lily and Ben went', 'One day, a bird'];
const MAX_TOKENS = 48;
const CLIENTS = 32;
const MAX_QUEUE = 32;

interface Expected {
  text: string;
  finish: 'stop' | 'length';
  promptTokens: number;
  tokens: number;
}

interface Health {
  status: string;
  queue: { active: boolean; waiting: number; max: number; served: number; abandoned: number; refused: number };
}

/** POST with a body written in `chunks` (no Content-Length unless given); survives the server closing early. */
function rawPost(url: string, path: string, chunks: Buffer[], headers: Record<string, string | number> = {}): Promise<{ status: number; body: string; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method: 'POST', agent: false, headers: { 'Content-Type': 'application/json', ...headers } }, (res) => {
      let body = '';
      const done = () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] as string | undefined });
      res.setEncoding('utf8');
      res.on('data', (s: string) => (body += s));
      res.on('end', done);
      res.on('error', done);
    });
    req.on('error', (e) => reject(e));
    (async () => {
      for (const c of chunks) {
        if (req.destroyed) return;
        if (!req.write(c)) await new Promise((r) => req.once('drain', r));
      }
      req.end();
    })().catch(() => {});
  });
}

/** Raw bytes on a TCP connection: what comes back before the server closes it. */
async function rawSocket(url: string, bytes: string): Promise<string> {
  const { port } = new URL(url);
  const net = await import('node:net');
  return new Promise((resolve) => {
    let out = '';
    const s = net.connect(Number(port), '127.0.0.1', () => s.write(bytes));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    setTimeout(() => s.destroy(), 5000);
  });
}

describe('kloop serve under load (reference mode)', () => {
  let srv: ServerProcess;
  let openai: OpenAI;
  const expected = new Map<string, Expected>();
  const health = async (): Promise<Health> => (await fetch(`${srv.url}/health`)).json() as Promise<Health>;

  beforeAll(async () => {
    const [s, ...refs] = await Promise.all([
      startServer(['--mode', 'reference', '--max-queue', String(MAX_QUEUE)]),
      ...PROMPTS.map((p) => kloopGenerate(['--mode', 'reference', '--prompt', p, '--max-tokens', String(MAX_TOKENS)])),
    ]);
    srv = s;
    PROMPTS.forEach((p, i) => {
      const r = refs[i]!;
      expected.set(p, { text: r.text, finish: r.stoppedAt === 'eos' ? 'stop' : 'length', promptTokens: r.promptTokens.length, tokens: r.tokens.length });
    });
    openai = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  });
  afterAll(async () => {
    expect(await srv?.stop()).toBe(0);
  });

  /** One client: streams a completion; `abortAfter` chunks, it aborts. */
  async function client(i: number, abortAfter?: number): Promise<'done' | 'aborted'> {
    const prompt = PROMPTS[i % PROMPTS.length]!;
    const ac = new AbortController();
    const stream = await openai.completions.create(
      { model: 'stories260K', prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } },
      { signal: ac.signal },
    );
    let text = '';
    let finish: string | null = null;
    let usage;
    let chunks = 0;
    try {
      for await (const c of stream) {
        if (c.usage) usage = c.usage;
        for (const ch of c.choices) {
          text += ch.text;
          finish = ch.finish_reason ?? finish;
        }
        if (abortAfter !== undefined && ++chunks >= abortAfter) {
          ac.abort();
          break;
        }
      }
    } catch (e) {
      if (abortAfter === undefined) throw e;
    }
    if (abortAfter !== undefined) return 'aborted';
    const want = expected.get(prompt)!;
    expect(text).toBe(want.text);
    expect(finish).toBe(want.finish);
    expect(usage).toEqual({ prompt_tokens: want.promptTokens, completion_tokens: want.tokens, total_tokens: want.promptTokens + want.tokens });
    return 'done';
  }

  it('3 rounds of 32 concurrent streams, a quarter aborting: correct texts, slots freed, flat RSS', { timeout: 180_000 }, async () => {
    // A warm-up round first (the heap and the JIT settle), then the three measured rounds.
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i, i % 4 === 3 ? 3 : undefined)));
    const rss: number[] = [srv.rss()];
    const before = await health();
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      const outcomes = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i, i % 4 === 3 ? 3 : undefined)));
      expect(outcomes.filter((o) => o === 'done')).toHaveLength(CLIENTS * 0.75);
      // Aborted slots are freed: nothing runs or waits once every client is done.
      let h = await health();
      for (let tries = 0; (h.queue.active || h.queue.waiting > 0) && tries < 50; tries++) {
        await new Promise((r) => setTimeout(r, 100));
        h = await health();
      }
      expect(h.queue.active).toBe(false);
      expect(h.queue.waiting).toBe(0);
      expect(h.queue.served - before.queue.served).toBe(CLIENTS * (round + 1));
      expect(h.queue.refused).toBe(0);
      await new Promise((r) => setTimeout(r, 200));
      rss.push(srv.rss());
      console.log(`round ${round + 1}: ${CLIENTS} streams in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    }
    // Flat: after the warm-up, the rounds add less than 16 MiB.
    console.log(`server RSS after the warm-up round and rounds 1-3: ${rss.map((b) => (b / 2 ** 20).toFixed(1)).join(', ')} MiB`);
    expect(Math.max(...rss) - rss[0]!).toBeLessThan(16 * 2 ** 20);
    expect((await openai.models.list()).data[0]!.id).toBe('stories260K');
  });

  it('a burst past the queue limit gets 429 (OpenAI error); every accepted request is right', { timeout: 120_000 }, async () => {
    const burst = MAX_QUEUE + 12;
    const want = expected.get(PROMPTS[0]!)!;
    const body = Buffer.from(JSON.stringify({ model: 'stories260K', prompt: PROMPTS[0], max_tokens: MAX_TOKENS, temperature: 0 }));
    // Every request on its own connection, all written before any is answered.
    const responses = await Promise.all(
      Array.from({ length: burst }, () =>
        rawPost(srv.url, '/v1/completions', [body], { 'Content-Length': body.length }).then((r) => ({
          status: r.status,
          retryAfter: r.retryAfter,
          body: JSON.parse(r.body) as Record<string, any>,
        })),
      ),
    );
    const refused = responses.filter((r) => r.status === 429);
    const ok = responses.filter((r) => r.status === 200);
    expect(refused.length + ok.length).toBe(burst);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(ok.length).toBeGreaterThanOrEqual(MAX_QUEUE + 1 - 2);
    for (const r of refused) {
      expect(r.body.error).toMatchObject({ type: 'rate_limit_error', code: 'queue_full' });
      expect(r.retryAfter).toBe('1');
    }
    for (const r of ok) expect(r.body.choices[0].text).toBe(want.text);
    // The openai client sees the 429 as a RateLimitError.
    const h = await health();
    expect(h.queue.waiting).toBe(0);
  });

  it('malformed requests get the right 4xx and never stop the server', { timeout: 60_000 }, async () => {
    const post = async (path: string, body: string) => {
      const r = await fetch(`${srv.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      return { status: r.status, body: (await r.json()) as { error: { message: string; type: string; param: string | null; code: string | null } } };
    };
    const cases: [string, string, number, string | null][] = [
      ['/v1/completions', '{"prompt": "x", ', 400, null],
      ['/v1/completions', '', 400, null],
      ['/v1/completions', '[1, 2]', 400, null],
      ['/v1/completions', '"text"', 400, null],
      ['/v1/completions', '{"prompt": 5}', 400, 'prompt'],
      ['/v1/completions', '{"prompt": ["a", "b"]}', 400, 'prompt'],
      ['/v1/completions', '{"prompt": [1, -2]}', 400, 'prompt'],
      ['/v1/completions', '{"prompt": [1, 99999]}', 400, 'prompt'],
      ['/v1/completions', '{"prompt": "x", "max_tokens": -1}', 400, 'max_tokens'],
      ['/v1/completions', '{"prompt": "x", "max_tokens": 1.5}', 400, 'max_tokens'],
      ['/v1/completions', '{"prompt": "x", "max_tokens": "10"}', 400, 'max_tokens'],
      ['/v1/completions', '{"prompt": "x", "temperature": "hot"}', 400, 'temperature'],
      ['/v1/completions', '{"prompt": "x", "temperature": -1}', 400, 'temperature'],
      ['/v1/completions', '{"prompt": "x", "top_p": 2}', 400, 'top_p'],
      ['/v1/completions', '{"prompt": "x", "seed": "s"}', 400, 'seed'],
      ['/v1/completions', '{"prompt": "x", "stream": "yes"}', 400, 'stream'],
      ['/v1/completions', '{"prompt": "x", "stop": [1]}', 400, 'stop'],
      ['/v1/completions', '{"prompt": "x", "stop": ["a","b","c","d","e"]}', 400, 'stop'],
      ['/v1/completions', '{"prompt": "x", "n": 2}', 400, 'n'],
      ['/v1/completions', '{"prompt": "x", "model": 7}', 400, 'model'],
      ['/v1/completions', `{"prompt": ${JSON.stringify('word '.repeat(3000))}}`, 400, 'prompt'],
      ['/v1/chat/completions', '{"messages": "hi"}', 400, 'messages'],
      ['/v1/chat/completions', '{"messages": [{"role": "robot", "content": "x"}]}', 400, 'messages[0].role'],
      ['/v1/chat/completions', '{"messages": [{"role": "user", "content": 3}]}', 400, 'messages[0].content'],
      ['/v1/chat/completions', '{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', 400, 'messages[0].content[0]'],
      ['/v1/chat/completions', '{"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}', 400, 'max_tokens'],
      ['/v1/chat/completions', '{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, 'model'],
      ['/v1/embeddings', '{}', 404, null],
    ];
    for (const [path, body, status, param] of cases) {
      const r = await post(path, body);
      expect([path, body.slice(0, 60), r.status]).toEqual([path, body.slice(0, 60), status]);
      expect(r.body.error.message.length).toBeGreaterThan(0);
      expect(r.body.error.type).toBe('invalid_request_error');
      expect(r.body.error.param).toBe(param);
    }
    expect((await fetch(`${srv.url}/nope`)).status).toBe(404);
    expect((await fetch(`${srv.url}/v1/completions`)).status).toBe(405);

    // Huge bodies: declared, and streamed without a length.
    const big = Buffer.alloc(4 << 20, 0x61);
    const declared = await rawPost(srv.url, '/v1/completions', [big], { 'Content-Length': big.length });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body).error.code).toBe('request_too_large');
    const streamed = await rawPost(srv.url, '/v1/completions', Array.from({ length: 64 }, () => Buffer.alloc(64 << 10, 0x20)));
    expect(streamed.status).toBe(413);
    // Not HTTP at all.
    expect(await rawSocket(srv.url, 'NOT HTTP\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/);

    // Still up and serving.
    expect(srv.alive()).toBe(true);
    expect((await (await fetch(`${srv.url}/v1/models`)).json()).data[0].id).toBe('stories260K');
    const r = await openai.completions.create({ model: 'stories260K', prompt: PROMPTS[0]!, max_tokens: MAX_TOKENS, temperature: 0 });
    expect(r.choices[0]!.text).toBe(expected.get(PROMPTS[0]!)!.text);
  });
});
