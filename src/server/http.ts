/**
 * The OpenAI-compatible HTTP server (node:http) on a ModelHost:
 *
 *   GET  /v1/models, /v1/models/{id}   the loaded model
 *   POST /v1/completions               text completion (stream or not)
 *   POST /v1/chat/completions          chat, rendered with the model's chat template
 *   GET  /health                       { status, model, queue } (not OpenAI's; for monitoring)
 *
 * Requests share the one model: one generation runs at a time, the others wait first come,
 * first served (RequestQueue); a full queue answers 429. A client that goes away (a closed
 * connection, mid-stream or while waiting) stops its generation at the next token or leaves the
 * queue. Every error is OpenAI-shaped JSON with its status; no request can stop the server.
 *
 * close() shuts down in order: no new requests (503), waiting ones refused (503), the running
 * generation stopped at its next token (a stream ends with an error event and `data: [DONE]`, a
 * plain request gets a 503), and only once every request is done does it resolve: the host can
 * then be closed safely.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ModelHost } from './model-host.ts';
import {
  ApiError,
  DEFAULT_COMPLETION_MAX_TOKENS,
  type Endpoint,
  type FinishReason,
  type ParsedRequest,
  chatResponse,
  completionResponse,
  newId,
  parseRequest,
  streamChunk,
  usage,
  usageChunk,
} from './openai.ts';
import { QueueFullError, RequestQueue } from './queue.ts';
import { StopMatcher } from './stop.ts';

export interface ServerOptions {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** Requests that may wait for the model while one runs (default 64); one more gets 429. */
  maxQueue?: number;
  /** Largest request body in bytes (default 1 MiB); a larger one gets 413. */
  maxBodyBytes?: number;
  /** One line per notable event (errors); default none. */
  log?: (line: string) => void;
}

export interface RunningServer {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  readonly queue: RequestQueue;
  /**
   * Stops accepting, ends every request (503, or an error event mid-stream) with its generation
   * stopped at the next token, resolves once they are done and the connections closed (the
   * host stays open). Safe to call twice.
   */
  close(): Promise<void>;
}

export const DEFAULT_PORT = 8080;
export const DEFAULT_MAX_QUEUE = 64;
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

/** After close(), connections still open (a client that does not read its answer) are cut after this. */
const CLOSE_GRACE_MS = 2000;

class BodyTooLarge extends Error {}

/** A request being handled: its response, its connection, what stops it, and its end. */
interface ActiveRequest {
  res: ServerResponse;
  socket: Socket;
  stop: AbortController;
  done?: Promise<void>;
}

/**
 * Reads the body up to `limit` bytes; throws BodyTooLarge past it (without reading the rest),
 * the signal's reason when it aborts first.
 */
function readBody(req: IncomingMessage, limit: number, signal: AbortSignal): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLarge());
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const fail = (e: unknown) => {
      req.off('data', onData);
      signal.removeEventListener('abort', onAbort);
      reject(e);
    };
    const onAbort = () => fail(signal.reason);
    const onData = (b: Buffer) => {
      size += b.length;
      if (size > limit) fail(new BodyTooLarge());
      else parts.push(b);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('data', onData);
    req.on('end', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(Buffer.concat(parts));
    });
    req.on('error', fail);
    req.on('close', () => fail(new Error('the connection closed before the body was read')));
  });
}

/** Content-Encoding of a request body, when it is not identity (the server reads plain bodies only). */
function bodyEncoding(req: IncomingMessage): string | undefined {
  const v = req.headers['content-encoding'];
  if (v === undefined) return undefined;
  const codings = v.split(',').map((c) => c.trim().toLowerCase());
  return codings.every((c) => c === '' || c === 'identity') ? undefined : v.trim().slice(0, 100);
}

/** Bytes of an oversized body read and dropped (so that the client gets its 413) before the connection is cut. */
const DRAIN_LIMIT_BYTES = 64 << 20;

/**
 * Reads and drops the rest of a refused body, so that the client, still writing it, can read
 * the answer. Resolves true once it has all been read, false past `limit` bytes or when the
 * signal aborts first (the connection must then be closed).
 */
function drain(req: IncomingMessage, limit: number, signal: AbortSignal): Promise<boolean> {
  req.removeAllListeners('data');
  if (req.complete) return Promise.resolve(true);
  return new Promise((resolve) => {
    let dropped = 0;
    const stop = () => {
      req.off('data', onData);
      signal.removeEventListener('abort', stop);
      req.pause();
      resolve(false);
    };
    const onData = (b: Buffer) => {
      dropped += b.length;
      if (dropped > limit) stop();
    };
    if (signal.aborted) return stop();
    signal.addEventListener('abort', stop, { once: true });
    req.on('data', onData);
    req.once('end', () => {
      signal.removeEventListener('abort', stop);
      resolve(true);
    });
    req.once('close', () => {
      signal.removeEventListener('abort', stop);
      resolve(req.complete);
    });
    req.resume();
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const sendError = (res: ServerResponse, e: ApiError, headers: Record<string, string> = {}) => sendJson(res, e.status, e.toJSON(), headers);

export async function startServer(host: ModelHost, o: ServerOptions = {}): Promise<RunningServer> {
  const bindHost = o.host ?? '127.0.0.1';
  const maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const queue = new RequestQueue(o.maxQueue ?? DEFAULT_MAX_QUEUE);
  const log = o.log ?? (() => {});
  const active = new Set<ActiveRequest>();
  let closing: Promise<void> | undefined;
  const shuttingDown = (detail?: string) =>
    new ApiError(503, `the server is shutting down${detail ? `: ${detail}` : ''}`, 'server_error', null, 'server_shutting_down');

  const modelObject = () => ({ id: host.id, object: 'model', created: host.created, owned_by: 'kloop' });

  async function handle(req: IncomingMessage, res: ServerResponse, stop: AbortController): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const route = (allowed: string) => {
      if (method !== allowed) throw new ApiError(405, `${method} ${path}: method not allowed (use ${allowed})`, 'invalid_request_error', null, 'method_not_allowed');
    };
    if (path === '/v1/models') {
      route('GET');
      return sendJson(res, 200, { object: 'list', data: [modelObject()] });
    }
    if (path.startsWith('/v1/models/')) {
      route('GET');
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      if (id !== host.id) throw unknownModel(id);
      return sendJson(res, 200, modelObject());
    }
    if (path === '/health') {
      route('GET');
      return sendJson(res, 200, { status: 'ok', model: host.id, mode: host.mode, queue: { active: queue.active, waiting: queue.pending, max: queue.maxWaiting, ...queue.counts } });
    }
    const endpoint: Endpoint | undefined = path === '/v1/completions' ? 'completions' : path === '/v1/chat/completions' ? 'chat' : undefined;
    if (!endpoint) throw new ApiError(404, `${method} ${path}: no such route`, 'invalid_request_error', null, 'unknown_url');
    route('POST');
    const encoding = bodyEncoding(req);
    if (encoding !== undefined) {
      throw new ApiError(415, `Content-Encoding '${encoding}' is not supported: send the request body uncompressed`, 'invalid_request_error', null, 'unsupported_content_encoding');
    }
    let body: unknown;
    try {
      const raw = await readBody(req, maxBody, stop.signal);
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      if (e instanceof BodyTooLarge) {
        const drained = await drain(req, DRAIN_LIMIT_BYTES, stop.signal);
        if (!drained) res.on('finish', () => req.socket.destroy());
        sendError(res, new ApiError(413, `request body larger than ${maxBody} bytes`, 'invalid_request_error', null, 'request_too_large'), drained ? {} : { Connection: 'close' });
        return;
      }
      if (e instanceof SyntaxError) throw new ApiError(400, `the request body is not valid JSON (${e.message})`, 'invalid_request_error', null, 'invalid_json');
      throw e;
    }
    const parsed = parseRequest(endpoint, body);
    if (parsed.model !== undefined && parsed.model !== host.id) throw unknownModel(parsed.model);
    await complete(parsed, res, stop);
  }

  const unknownModel = (id: string) => new ApiError(404, `The model '${id}' does not exist (this server has '${host.id}')`, 'invalid_request_error', 'model', 'model_not_found');

  /** Prompt tokens of a request, checked against the vocabulary and the context. */
  function promptOf(p: ParsedRequest): { tokens: number[]; stops: string[] } {
    let tokens: number[];
    let stops = p.stops;
    if (p.endpoint === 'chat') {
      let text: string;
      try {
        text = host.chat.render(p.messages!);
      } catch (e) {
        throw new ApiError(400, `messages: the chat template failed: ${(e as Error).message}`, 'invalid_request_error', 'messages', 'template_error');
      }
      tokens = host.encode(text, true);
      stops = [...new Set([...stops, ...host.chat.stops])];
    } else if (typeof p.prompt === 'string') {
      tokens = host.encode(p.prompt, true);
    } else {
      tokens = p.prompt!;
      const badId = tokens.find((t) => t >= host.vocabSize);
      if (badId !== undefined) throw new ApiError(400, `prompt: token id ${badId} is outside the vocabulary (0..${host.vocabSize - 1})`, 'invalid_request_error', 'prompt', 'invalid_value');
    }
    if (tokens.length >= host.contextLength) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${host.contextLength} tokens; the prompt has ${tokens.length} (one position is needed to generate).`,
        'invalid_request_error',
        p.endpoint === 'chat' ? 'messages' : 'prompt',
        'context_length_exceeded',
      );
    }
    return { tokens, stops };
  }

  /**
   * Runs a request once its turn comes. `stop` aborts when the client goes away (nothing more is
   * written) or the server shuts down (its reason, a 503, is the answer).
   */
  async function complete(p: ParsedRequest, res: ServerResponse, stop: AbortController): Promise<void> {
    const { tokens: promptTokens, stops } = promptOf(p);
    const room = host.contextLength - promptTokens.length;
    const maxTokens = Math.min(p.maxTokens ?? (p.endpoint === 'chat' ? room : DEFAULT_COMPLETION_MAX_TOKENS), room);
    const head = { id: newId(p.endpoint), created: Math.floor(Date.now() / 1000), model: host.id };
    let gone = false;
    res.on('close', () => {
      if (res.writableFinished) return;
      gone = true;
      stop.abort(new Error('client disconnected'));
    });
    let release: () => void;
    try {
      release = await queue.acquire(stop.signal);
    } catch (e) {
      if (e instanceof QueueFullError) {
        throw new ApiError(429, e.message, 'rate_limit_error', null, 'queue_full');
      }
      if (gone) return; // the client went away while waiting
      throw e;
    }
    try {
      if (gone) return;
      if (stop.signal.aborted) throw stop.signal.reason;
      const write = (obj: unknown) => {
        if (!gone) res.write(`data: ${JSON.stringify(obj)}\n\n`);
      };
      if (p.stream) {
        res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
        if (p.endpoint === 'chat') write(streamChunk('chat', head, { role: true, text: '' }, null, p.includeUsage));
      }
      const matcher = new StopMatcher(stops);
      let text = '';
      const emit = (piece: string) => {
        if (piece === '') return;
        text += piece;
        if (p.stream) write(streamChunk(p.endpoint, head, { text: piece }, null, p.includeUsage));
      };
      let finish: FinishReason = 'length';
      let generated = 0;
      let cut = false;
      const gen = host.generate({ promptTokens, maxTokens, sampling: p.sampling });
      try {
        for (;;) {
          const r = await gen.next();
          if (r.done) {
            if (r.value.stoppedAt === 'eos') finish = 'stop';
            const m = matcher.push(r.value.tail);
            emit(m.text);
            if (m.stopped) finish = 'stop';
            else emit(matcher.flush());
            break;
          }
          generated++;
          // Let the event loop run between tokens: a CPU-bound executor (the reference) would
          // otherwise hold it for a whole generation, and neither stream writes nor a client's
          // disconnect nor new requests would be seen until the end.
          await new Promise<void>((r) => setImmediate(r));
          if (stop.signal.aborted) {
            cut = true; // frees the model at the next token
            break;
          }
          const m = matcher.push(r.value.text);
          emit(m.text);
          if (m.stopped) {
            finish = 'stop';
            break;
          }
        }
      } finally {
        await gen.return(undefined as never).catch(() => {});
      }
      if (gone) return;
      if (cut) throw shuttingDown(`the generation was stopped after ${generated} tokens`);
      const u = usage(promptTokens.length, generated);
      if (p.stream) {
        write(streamChunk(p.endpoint, head, {}, finish, p.includeUsage));
        if (p.includeUsage) write(usageChunk(p.endpoint, head, u));
        res.end('data: [DONE]\n\n');
      } else {
        sendJson(res, 200, p.endpoint === 'chat' ? chatResponse(head, text, finish, u) : completionResponse(head, text, finish, u));
      }
    } catch (e) {
      if (res.headersSent) {
        // Mid-stream: an error event, then the end of the stream.
        const err = e instanceof ApiError ? e : new ApiError(500, `generation failed: ${(e as Error).message}`, 'server_error');
        if (!gone) res.end(`data: ${JSON.stringify(err.toJSON())}\n\ndata: [DONE]\n\n`);
        log(`kloop serve: ${err.message}`);
        return;
      }
      throw e;
    } finally {
      release();
    }
  }

  const server = createServer((req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    if (closing) {
      sendError(res, shuttingDown(), { Connection: 'close' });
      return;
    }
    const a: ActiveRequest = { res, socket: req.socket, stop: new AbortController() };
    active.add(a);
    a.done = handle(req, res, a.stop)
      .catch((e: unknown) => {
        if (e instanceof ApiError) {
          sendError(res, e, e.status === 429 ? { 'Retry-After': '1' } : {});
          return;
        }
        const message = e instanceof Error ? e.message : String(e);
        log(`kloop serve: ${req.method} ${req.url}: ${message}`);
        sendError(res, new ApiError(500, message, 'server_error', null, 'internal_error'));
      })
      .finally(() => active.delete(a));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && !socket.destroyed) {
      const text = JSON.stringify(new ApiError(400, `bad HTTP request (${err.code ?? err.message})`).toJSON());
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    } else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? DEFAULT_PORT, bindHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    host: addr.address,
    port: addr.port,
    url: `http://${shownHost}:${addr.port}`,
    queue,
    close: () => (closing ??= shutdown()),
  };

  async function shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const running = [...active];
    for (const a of running) {
      if (!a.res.headersSent) a.res.setHeader('Connection', 'close');
      a.stop.abort(shuttingDown());
    }
    // Every request ends on its own (a generation at its next token) before the host may go;
    // then its connection ends once what was written has been sent.
    await Promise.all(running.map((a) => a.done));
    for (const a of running) a.socket.end();
    server.closeIdleConnections();
    const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    await closed;
    clearTimeout(cut);
  }
}
