/**
 * The server's ONE contact with the engine: loads a model, opens a session on it (the engine's
 * front door, src/engine/session.ts: device, executor, defaults), finds the model's chat
 * template, and runs one generation at a time through the session.
 *
 * Everything else in src/server talks to the `ModelHost` interface only.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KloopError } from '../errors.ts';
import type { Mode } from '../engine/executor.ts';
import type { SamplingOptions } from '../engine/sampler.ts';
import { openSession, resolveChoice } from '../engine/session.ts';
import { detectFormat, loadModel, resolveDefaultModel } from '../loader/index.ts';
import { readGgufHeader } from '../loader/gguf.ts';
import { BinaryFile } from '../loader/util.ts';
import type { LoadedModel } from '../loader/types.ts';
import { type ChatFormat, chatFormat, templateFromTokenizerConfig, tokenText } from './chat-template.ts';

export interface ModelHostOptions {
  /** Model path (default: stories260K, found or downloaded as `kloop generate` does). */
  model?: string;
  /** Tokenizer of a llama2.c checkpoint. */
  tokenizer?: string;
  /** Executor mode (default looped). */
  mode?: Mode;
  /** Looped mode: tokens per dispatch (default 16). */
  tokensPerDispatch?: number;
  /** KV-cache positions (default: the model's, at most 2048). */
  context?: number;
  /** WebGPU adapter name filter. */
  adapter?: string;
  /** A Jinja chat template file overriding the model's own. */
  chatTemplate?: string;
  /** Progress and device messages (one line each). */
  log?: (line: string) => void;
}

/** One generation: the prompt as token ids (BOS included when wanted) and how to sample. */
export interface HostRequest {
  promptTokens: number[];
  /** Tokens to generate at most (the context also ends a generation). */
  maxTokens: number;
  sampling: SamplingOptions;
}

export interface HostToken {
  id: number;
  /** The text this token adds. */
  text: string;
}

export interface HostResult {
  /** Why it ended: an end-of-sequence token, maxTokens, or the end of the context. */
  stoppedAt: 'eos' | 'max-tokens' | 'context';
  /** Tokens generated. */
  tokens: number;
  /** Text held back by the tokenizer until the end (an incomplete UTF-8 sequence); usually empty. */
  tail: string;
}

export interface ModelHost {
  /** The model's name, used as the OpenAI model id. */
  readonly id: string;
  /** Seconds since the epoch when it was loaded. */
  readonly created: number;
  readonly mode: Mode;
  /** The adapter it runs on (or the CPU reference). */
  readonly adapterName: string;
  /** KV-cache positions: prompt plus generated tokens fit in this. */
  readonly contextLength: number;
  /** Token ids are 0 .. vocabSize-1. */
  readonly vocabSize: number;
  readonly chat: ChatFormat;
  /** Token ids of `text`, with BOS first when `bos`. */
  encode(text: string, bos: boolean): number[];
  /**
   * Runs one generation, streaming its tokens; the iterator's return value says why it ended.
   * One at a time: the caller queues requests. Ending the iteration early (break / return())
   * stops it after the token in hand.
   */
  generate(req: HostRequest): AsyncGenerator<HostToken, HostResult, undefined>;
  /** Frees the executor and the device (after the running generation, if any, has ended). */
  close(): Promise<void>;
}

export async function openModelHost(o: ModelHostOptions = {}): Promise<ModelHost> {
  const log = o.log ?? (() => {});
  const path = o.model ?? (await resolveDefaultModel());
  if (o.tokenizer !== undefined) {
    const { format } = await detectFormat(path);
    if (format !== 'llama2c') throw new KloopError(`--tokenizer: only a llama2.c checkpoint takes a separate tokenizer (${path} is ${format})`);
  }
  const model = await loadModel(path, { tokenizer: o.tokenizer });
  const chat = await findChatFormat(model, path, o.chatTemplate);
  const choice = resolveChoice({ mode: o.mode, tokensPerDispatch: o.tokensPerDispatch });
  const mode = choice.mode;
  const session = openSession(model, { adapter: o.adapter, context: o.context, log });
  // Build the executor (open the device, compile the kernels) before the first request.
  await session.executor(choice);
  let busy = false;
  let closed = false;

  async function* generate(req: HostRequest): AsyncGenerator<HostToken, HostResult, undefined> {
    if (closed) throw new KloopError('the model host is closed');
    if (busy) throw new KloopError('the model host runs one generation at a time');
    busy = true;
    try {
      const gen = session.generate({ ...choice, promptTokens: req.promptTokens, maxTokens: req.maxTokens, sampling: req.sampling });
      let streamed = 0;
      for await (const t of gen) {
        streamed += t.text.length;
        yield { id: t.id, text: t.text };
      }
      const r = gen.result();
      const stoppedAt = r.stoppedAt === 'stopped' ? 'max-tokens' : r.stoppedAt;
      return { stoppedAt, tokens: r.tokens.length, tail: r.text.slice(streamed) };
    } finally {
      busy = false;
    }
  }

  return {
    id: model.name,
    created: Math.floor(Date.now() / 1000),
    mode,
    adapterName: mode === 'reference' ? 'CPU reference (float64)' : session.adapter.name,
    contextLength: session.context,
    vocabSize: model.config.vocabSize,
    chat,
    encode: (text, bos) => model.tokenizer.encode(text, { bos }),
    generate,
    async close() {
      if (closed) return;
      closed = true;
      await session.dispose();
    },
  };
}

/** The chat template: an explicit file, else the model's own (GGUF metadata or tokenizer_config.json), else the plain fallback. */
async function findChatFormat(model: LoadedModel, path: string, explicit: string | undefined): Promise<ChatFormat> {
  const c = model.config;
  let special = { bos: '<s>', eos: '</s>' };
  let source: string | undefined;
  let origin = 'plain';
  const { format, path: resolved } = await detectFormat(path);
  if (format === 'gguf') {
    const f = await BinaryFile.open(resolved);
    try {
      const md = (await readGgufHeader(f)).metadata;
      const t = md.get('tokenizer.chat_template');
      if (typeof t === 'string') {
        source = t;
        origin = 'GGUF tokenizer.chat_template';
      }
      const tokens = md.get('tokenizer.ggml.tokens');
      if (Array.isArray(tokens)) {
        const text = (id: number) => (typeof tokens[id] === 'string' ? (tokens[id] as string) : '');
        special = { bos: text(c.bosId), eos: text(c.eosId) };
      }
    } finally {
      await f.close();
    }
  } else if (format === 'hf') {
    const cfg = await readFile(join(resolved, 'tokenizer_config.json'), 'utf8').then(
      (s) => JSON.parse(s) as Record<string, unknown>,
      () => undefined,
    );
    if (cfg) {
      special = { bos: tokenText(cfg.bos_token) ?? '', eos: tokenText(cfg.eos_token) ?? '' };
      source = templateFromTokenizerConfig(cfg);
      if (source !== undefined) origin = 'tokenizer_config.json';
    }
    if (source === undefined) {
      source = await readFile(join(resolved, 'chat_template.jinja'), 'utf8').catch(() => undefined);
      if (source !== undefined) origin = 'chat_template.jinja';
    }
  }
  if (explicit !== undefined) {
    try {
      source = await readFile(explicit, 'utf8');
    } catch (e) {
      throw new KloopError(`--chat-template ${explicit}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
    origin = explicit;
  }
  try {
    return chatFormat(source, origin, special);
  } catch (e) {
    throw new KloopError((e as Error).message);
  }
}
