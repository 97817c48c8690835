/**
 * The OpenAI wire format: request bodies of /v1/completions and /v1/chat/completions checked
 * field by field into a `ParsedRequest`, the response and stream-chunk objects, and the error
 * object ({ error: { message, type, param, code } }) with its HTTP status.
 *
 * Defaults follow OpenAI's: temperature 1, top_p 1, max_tokens 16 for completions and the rest of
 * the context for chat; a request without a seed samples with a random one. Fields kloop cannot
 * honour (n > 1, logprobs, penalties, tools, ...) are refused with a 400 naming the field rather
 * than ignored; unknown fields are ignored.
 */
import { randomBytes } from 'node:crypto';
import type { SamplingOptions } from '../engine/sampler.ts';
import type { ChatMessage } from './chat-template.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const bad = (param: string, message: string, code: string | null = 'invalid_value') => new ApiError(400, `${param}: ${message}`, 'invalid_request_error', param, code);

export type Endpoint = 'completions' | 'chat';

export interface ParsedRequest {
  endpoint: Endpoint;
  /** The `model` field, when given (null is absent, as for every field). */
  model: string | undefined;
  /** A completion's prompt: text (encoded with BOS) or token ids (used as they are). */
  prompt?: string | number[];
  /** A chat's messages. */
  messages?: ChatMessage[];
  /** undefined: the endpoint's default. */
  maxTokens: number | undefined;
  sampling: SamplingOptions;
  stops: string[];
  stream: boolean;
  includeUsage: boolean;
}

const MAX_STOPS = 4;
/** Completions' default max_tokens (OpenAI's). */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (v: unknown): boolean => v !== undefined && v !== null;

function optNumber(b: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = b[key];
  if (!present(v)) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, `expected a number, got ${describe(v)}`, 'invalid_type');
  if (v < min || v > max) throw bad(key, `must be in [${min}, ${max}] (got ${v})`);
  return v;
}

function optInt(b: Record<string, unknown>, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = b[key];
  if (!present(v)) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw bad(key, `expected an integer, got ${describe(v)}`, 'invalid_type');
  if (v < min || v > max) throw bad(key, `must be ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`} (got ${v})`);
  return v;
}

function optBool(b: Record<string, unknown>, key: string, param = key): boolean | undefined {
  const v = b[key];
  if (!present(v)) return undefined;
  if (typeof v !== 'boolean') throw bad(param, `expected a boolean, got ${describe(v)}`, 'invalid_type');
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Fields kloop refuses unless they have their neutral value. */
function refuseUnsupported(b: Record<string, unknown>, endpoint: Endpoint): void {
  const neutral: [string, (v: unknown) => boolean][] = [
    ['n', (v) => v === 1],
    ['best_of', (v) => v === 1],
    ['echo', (v) => v === false],
    ['suffix', (v) => v === ''],
    ['logprobs', (v) => v === false || (endpoint === 'completions' && v === 0)],
    ['top_logprobs', (v) => v === 0],
    ['frequency_penalty', (v) => v === 0],
    ['presence_penalty', (v) => v === 0],
    ['logit_bias', (v) => isObject(v) && Object.keys(v).length === 0],
    ['tools', (v) => Array.isArray(v) && v.length === 0],
    ['functions', (v) => Array.isArray(v) && v.length === 0],
    ['response_format', (v) => isObject(v) && v.type === 'text'],
  ];
  for (const [key, ok] of neutral) {
    const v = b[key];
    if (present(v) && !ok(v)) throw bad(key, 'not supported by this server', 'unsupported_parameter');
  }
}

function parseStops(v: unknown): string[] {
  if (!present(v)) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) throw bad('stop', 'expected a string or an array of strings', 'invalid_type');
  if (list.length > MAX_STOPS) throw bad('stop', `at most ${MAX_STOPS} stop strings (got ${list.length})`);
  if (list.some((s) => s === '')) throw bad('stop', 'stop strings must not be empty');
  return list as string[];
}

/** OpenAI seeds are 64-bit integers; the sampler's is 32-bit: the low 32 bits. */
function samplerSeed(seed: number | undefined): number {
  if (seed === undefined) return randomBytes(4).readUInt32LE(0);
  return Number(BigInt.asUintN(32, BigInt(seed)));
}

const PROMPT_SHAPES = 'a string, an array of token ids (integers >= 0), an array of strings or an array of arrays of token ids';

const tokenIds = (v: unknown[]): v is number[] => v.every((x) => typeof x === 'number');

/** Token ids (`at` names them in the error): integers >= 0, at least one. */
function checkTokenIds(v: number[], at: string): number[] {
  if (v.length === 0) throw bad('prompt', `${at} must not be empty`);
  if (!v.every((x) => Number.isSafeInteger(x) && x >= 0)) throw bad('prompt', 'token ids must be integers >= 0');
  return v;
}

/**
 * OpenAI's prompt shapes, looked at two levels deep at most: a string, token ids, or a list of
 * either (strings, arrays of token ids) holding one prompt. Anything else is refused by shape.
 */
function parsePrompt(v: unknown): string | number[] {
  if (typeof v === 'string') return v;
  if (!present(v)) throw bad('prompt', 'required', 'missing_required_parameter');
  const wrong = (at: string, x: unknown) => bad('prompt', `expected ${PROMPT_SHAPES}; ${at} is ${describe(x)}`, 'invalid_type');
  if (!Array.isArray(v)) throw wrong('prompt', v);
  if (v.length === 0) throw bad('prompt', 'must not be empty');
  if (tokenIds(v)) return checkTokenIds(v, 'prompt');
  const strings = v.every((x) => typeof x === 'string');
  if (!strings) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (!Array.isArray(x)) throw wrong(`prompt[${i}]`, x);
      const j = x.findIndex((t) => typeof t !== 'number');
      if (j >= 0) throw wrong(`prompt[${i}][${j}]`, x[j]);
    }
  }
  if (v.length > 1) throw bad('prompt', 'one prompt per request (a batch of prompts is not supported)', 'unsupported_parameter');
  return strings ? (v[0] as string) : checkTokenIds(v[0] as number[], 'prompt[0]');
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

function parseMessages(v: unknown): ChatMessage[] {
  if (!present(v)) throw bad('messages', 'required', 'missing_required_parameter');
  if (!Array.isArray(v)) throw bad('messages', `expected an array, got ${describe(v)}`, 'invalid_type');
  if (v.length === 0) throw bad('messages', 'must not be empty');
  return v.map((m, i) => {
    const p = `messages[${i}]`;
    if (!isObject(m)) throw bad(p, `expected an object, got ${describe(m)}`, 'invalid_type');
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) throw bad(`${p}.role`, `expected one of ${[...ROLES].join(', ')}`);
    const c = m.content;
    let content: string;
    if (c === undefined) throw bad(`${p}.content`, 'required', 'missing_required_parameter');
    if (typeof c === 'string') content = c;
    else if (c === null && m.role === 'assistant') content = '';
    else if (Array.isArray(c)) {
      content = c
        .map((part, j) => {
          if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
            throw bad(`${p}.content[${j}]`, 'only text parts ({ "type": "text", "text": ... }) are supported', 'unsupported_parameter');
          }
          return part.text;
        })
        .join('');
    } else throw bad(`${p}.content`, `expected a string or an array of text parts, got ${describe(c)}`, 'invalid_type');
    return { role: m.role, content };
  });
}

/** Checks a request body of `endpoint`; throws an ApiError (400) naming the first bad field. */
export function parseRequest(endpoint: Endpoint, body: unknown): ParsedRequest {
  if (!isObject(body)) throw new ApiError(400, `the request body must be a JSON object, got ${describe(body)}`, 'invalid_request_error', null, 'invalid_body');
  const b = body;
  if (present(b.model) && typeof b.model !== 'string') throw bad('model', `expected a string, got ${describe(b.model)}`, 'invalid_type');
  refuseUnsupported(b, endpoint);
  const maxTokens =
    endpoint === 'chat' ? (optInt(b, 'max_completion_tokens', 0) ?? optInt(b, 'max_tokens', 0)) : optInt(b, 'max_tokens', 0);
  const temperature = optNumber(b, 'temperature', 0, 2) ?? 1;
  const topP = optNumber(b, 'top_p', 0, 1) ?? 1;
  const topK = optInt(b, 'top_k', 0) ?? 0;
  const seed = optInt(b, 'seed', Number.MIN_SAFE_INTEGER);
  const stream = optBool(b, 'stream') ?? false;
  let includeUsage = false;
  if (present(b.stream_options)) {
    if (!isObject(b.stream_options)) throw bad('stream_options', `expected an object, got ${describe(b.stream_options)}`, 'invalid_type');
    includeUsage = optBool(b.stream_options, 'include_usage', 'stream_options.include_usage') ?? false;
  }
  // top_p 0 keeps only the most likely token: greedy.
  const sampling: SamplingOptions = topP === 0 ? { temperature: 0, topK: 0, topP: 1, seed: 0 } : { temperature, topK, topP, seed: samplerSeed(seed) };
  const model = present(b.model) ? (b.model as string) : undefined;
  const common = { endpoint, model, maxTokens, sampling, stops: parseStops(b.stop), stream, includeUsage };
  return endpoint === 'chat' ? { ...common, messages: parseMessages(b.messages) } : { ...common, prompt: parsePrompt(b.prompt) };
}

export type FinishReason = 'stop' | 'length';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export const usage = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

export const newId = (endpoint: Endpoint): string => `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;

export interface ResponseHead {
  id: string;
  created: number;
  model: string;
}

export function completionResponse(h: ResponseHead, text: string, finish: FinishReason, u: Usage) {
  return {
    id: h.id,
    object: 'text_completion',
    created: h.created,
    model: h.model,
    choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
    usage: u,
  };
}

export function chatResponse(h: ResponseHead, text: string, finish: FinishReason, u: Usage) {
  return {
    id: h.id,
    object: 'chat.completion',
    created: h.created,
    model: h.model,
    choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finish }],
    usage: u,
  };
}

/** One stream chunk: a text delta (chat: `role` on the first), or the final one with finish_reason. */
export function streamChunk(endpoint: Endpoint, h: ResponseHead, delta: { text?: string; role?: boolean }, finish: FinishReason | null, withUsage: boolean) {
  const head = { id: h.id, created: h.created, model: h.model };
  const extra = withUsage ? { usage: null } : {};
  if (endpoint === 'completions') {
    return { ...head, object: 'text_completion', choices: [{ text: delta.text ?? '', index: 0, logprobs: null, finish_reason: finish }], ...extra };
  }
  const d: Record<string, string> = {};
  if (delta.role) d.role = 'assistant';
  if (delta.text !== undefined) d.content = delta.text;
  return { ...head, object: 'chat.completion.chunk', choices: [{ index: 0, delta: d, logprobs: null, finish_reason: finish }], ...extra };
}

/** The last chunk of a stream with stream_options.include_usage: no choices, the usage. */
export function usageChunk(endpoint: Endpoint, h: ResponseHead, u: Usage) {
  return { id: h.id, object: endpoint === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: h.created, model: h.model, choices: [], usage: u };
}
