/**
 * The HTTP server in this process on a stand-in ModelHost (one 'a' per token, at a set pace):
 * request checks over the wire, and close() with requests running, waiting and half sent.
 */
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chatFormat } from '../../src/server/chat-template.ts';
import { type RunningServer, startServer } from '../../src/server/http.ts';
import type { HostRequest, HostResult, HostToken, ModelHost } from '../../src/server/model-host.ts';

interface FakeHost extends ModelHost {
  /** Whether a generation is running now. */
  readonly running: boolean;
  /** Tokens produced so far, over every generation. */
  readonly produced: number;
  readonly closed: boolean;
}

/** A host whose every token takes `tokenMs`; a token asked for after close() fails as a destroyed device would. */
function fakeHost(tokenMs: number): FakeHost {
  let running = false;
  let produced = 0;
  let closed = false;
  async function* generate(req: HostRequest): AsyncGenerator<HostToken, HostResult, undefined> {
    running = true;
    try {
      for (let i = 0; i < req.maxTokens; i++) {
        await new Promise((r) => setTimeout(r, tokenMs));
        if (closed) throw new Error('WebGPU device lost: device was destroyed');
        produced++;
        yield { id: 97, text: 'a' };
      }
      return { stoppedAt: 'max-tokens', tokens: req.maxTokens, tail: '' };
    } finally {
      running = false;
    }
  }
  return {
    id: 'fake',
    created: 0,
    mode: 'reference',
    adapterName: 'none',
    contextLength: 1 << 20,
    vocabSize: 256,
    chat: chatFormat(undefined, 'plain', { bos: '<s>', eos: '</s>' }),
    encode: (text) => [1, ...Buffer.from(text)],
    generate,
    async close() {
      closed = true;
    },
    get running() {
      return running;
    },
    get produced() {
      return produced;
    },
    get closed() {
      return closed;
    },
  };
}

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } };

const post = (url: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' || body instanceof Blob ? body : JSON.stringify(body),
  });

/** Status and JSON body; status 0 when the connection is cut instead. */
async function json(r: Promise<Response>): Promise<{ status: number; body: any }> {
  try {
    const res = await r;
    return { status: res.status, body: await res.json() };
  } catch (e) {
    return { status: 0, body: { error: { message: String(e) } } };
  }
}

/** A stream's reader: `next()` waits for more text; `rest()` reads to the end (throws if the connection is cut). */
async function openStream(url: string, body: unknown) {
  const res = await post(url, '/v1/completions', { ...(body as object), stream: true });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = '';
  return {
    async next() {
      const { value } = await reader.read();
      text += dec.decode(value);
      return text;
    },
    async rest() {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return text;
        text += dec.decode(value);
      }
    },
  };
}

const until = async (cond: () => boolean, ms = 5000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** `p`, or a failure naming `what` when it has not settled after `ms` (a hang guard, not a speed check). */
async function settlesWithin<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle in ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

let srv: RunningServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

describe('request checks over HTTP', () => {
  let checks: RunningServer;
  beforeAll(async () => {
    checks = await startServer(fakeHost(0), { port: 0 });
  });
  afterAll(() => checks.close());

  it('"model": null is absent, as every other null field', async () => {
    const r = await json(post(checks.url, '/v1/completions', { model: null, prompt: 'x', max_tokens: 2 }));
    expect(r.status).toBe(200);
    expect(r.body.choices[0].text).toBe('aa');
  });

  it('a compressed body is a 415 naming its Content-Encoding; identity is read', async () => {
    const gz = await json(post(checks.url, '/v1/completions', new Blob([new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0])]), { 'Content-Encoding': 'gzip' }));
    expect(gz.status).toBe(415);
    expect(gz.body.error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'unsupported_content_encoding' });
    expect(gz.body.error.message).toMatch(/Content-Encoding 'gzip' is not supported/);
    expect((await json(post(checks.url, '/v1/completions', { prompt: 'x', max_tokens: 1 }, { 'Content-Encoding': 'identity' }))).status).toBe(200);
  });

  it('a message without content names messages[i].content', async () => {
    const r = await json(post(checks.url, '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }, { role: 'user' }] }));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ param: 'messages[1].content', code: 'missing_required_parameter' });
    expect(r.body.error.message).toMatch(/^messages\[1\]\.content: required/);
  });

  it('a bad stream_options.include_usage names its full path', async () => {
    const r = await json(post(checks.url, '/v1/completions', { prompt: 'x', stream: true, stream_options: { include_usage: 'yes' } }));
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe('stream_options.include_usage');
  });

  it('a prompt nested 400,000 deep (under the body limit) is a 400 naming the accepted shapes', async () => {
    const depth = 400_000;
    const body = `{"prompt":${'['.repeat(depth)}1${']'.repeat(depth)}}`;
    expect(body.length).toBeLessThan(1 << 20);
    const r = await json(post(checks.url, '/v1/completions', body));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param: 'prompt', code: 'invalid_type' });
    expect(r.body.error.message).toMatch(/array of arrays of token ids/);
  });

  it('a prompt nested 3 deep is refused, not flattened', async () => {
    const r = await json(post(checks.url, '/v1/completions', '{"prompt":[[[1]]]}'));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ param: 'prompt', code: 'invalid_type' });
    expect(r.body.error.message).toMatch(/prompt\[0\]\[0\] is an array/);
  });
});

describe('close()', () => {
  it('ends a running stream with an error event and [DONE], refuses the waiting requests with 503, then resolves', async () => {
    const host = fakeHost(5);
    srv = await startServer(host, { port: 0 });
    const s = await openStream(srv.url, { prompt: 'x', max_tokens: 100_000 });
    await s.next();
    const waitingPlain = json(post(srv.url, '/v1/completions', { prompt: 'y', max_tokens: 5 }));
    const waitingStream = json(post(srv.url, '/v1/completions', { prompt: 'z', max_tokens: 5, stream: true }));
    await until(() => srv!.queue.pending === 2);

    await srv.close();
    // Nothing runs on the host once close() resolves: it can be closed.
    expect(host.running).toBe(false);
    const produced = host.produced;
    await host.close();

    const text = await s.rest();
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    const events = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    const last = events.at(-1) as ErrorBody;
    expect(last.error).toMatchObject({ type: 'server_error', code: 'server_shutting_down' });
    expect(last.error.message).toMatch(/stopped after \d+ tokens/);
    expect(events.slice(0, -1).every((e) => e.choices[0].text === 'a')).toBe(true);
    // Stopped at a token: far from its 100,000, and no token afterwards.
    expect(produced).toBeLessThan(1000);
    expect(host.produced).toBe(produced);
    for (const w of [await waitingPlain, await waitingStream]) {
      expect(w.status).toBe(503);
      expect((w.body as ErrorBody).error).toMatchObject({ type: 'server_error', param: null, code: 'server_shutting_down' });
    }
  });

  it('a running plain request gets a 503; a slow generation is stopped at its next token, not run to the end', async () => {
    const host = fakeHost(300);
    srv = await startServer(host, { port: 0 });
    const running = json(post(srv.url, '/v1/completions', { prompt: 'x', max_tokens: 1000 }));
    await until(() => host.produced >= 1);
    // Its 1000 tokens would take 300 s: close() lets at most the token under way finish.
    const before = host.produced;
    await settlesWithin(srv.close(), 'close()');
    expect(host.running).toBe(false);
    expect(host.produced - before).toBeLessThanOrEqual(1);
    const r = await running;
    expect(r.status).toBe(503);
    expect((r.body as ErrorBody).error).toMatchObject({ type: 'server_error', code: 'server_shutting_down' });
    expect((r.body as ErrorBody).error.message).toMatch(`stopped after ${host.produced} tokens`);
  });

  it('a request whose body is still being sent gets a 503 at once', async () => {
    srv = await startServer(fakeHost(0), { port: 0 });
    const { port } = srv;
    const arrived = new Promise((r) => srv!.server.once('request', r));
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/v1/completions', method: 'POST', agent: false, headers: { 'Content-Type': 'application/json', 'Content-Length': 100 } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => (body += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.write('{"prompt": ');
    });
    await arrived;
    await new Promise((r) => setImmediate(r));
    // The rest of the body never comes: close() does not wait for it. A server that waited would
    // only cut the connection after its grace time, and the client would get no answer at all.
    await settlesWithin(srv.close(), 'close()');
    const r = await settlesWithin(answer, 'the answer');
    expect(r.status).toBe(503);
    expect((JSON.parse(r.body) as ErrorBody).error.code).toBe('server_shutting_down');
  });
});
