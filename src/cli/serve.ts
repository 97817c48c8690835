/**
 * `kloop serve`: an OpenAI-compatible HTTP server (see http.ts) on one loaded model. Binds
 * 127.0.0.1 unless --host says otherwise (a non-loopback address is said on stderr); runs until
 * SIGINT or SIGTERM.
 */
import { KloopError } from '../errors.ts';
import { MAX_TOKENS_PER_DISPATCH } from '../engine/layout.ts';
import { intFlag, modeFlag, parseFlags, pathFlag } from './args.ts';
import { checkModelsEnv } from './engine.ts';
import type { Io } from './io.ts';
import { DEFAULT_MAX_QUEUE, DEFAULT_PORT, startServer } from '../server/http.ts';
import { openModelHost } from '../server/model-host.ts';

export const SERVE_USAGE = `usage: kloop serve [options]
  --model PATH              llama2.c .bin, .gguf, or Hugging Face folder (default: stories260K)
  --tokenizer PATH          tokenizer of a llama2.c checkpoint (default: the tok*.bin beside it)
  --host ADDR               address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network)
  --port N                  port (default ${DEFAULT_PORT}; 0 picks a free one)
  --mode MODE               reference | per-op | per-layer | looped (default looped)
  --max-queue N             requests that may wait while one generates (default ${DEFAULT_MAX_QUEUE}); more get 429
  --tokens-per-dispatch K   looped mode: tokens per dispatch, 1..${MAX_TOKENS_PER_DISPATCH} (default 16)
  --context N               KV-cache positions (default: the model's, at most 2048)
  --adapter NAME            WebGPU adapter whose name contains NAME
  --chat-template FILE      Jinja chat template to use instead of the model's own

endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (stream or not), GET /health
`;

const FLAGS = {
  model: 'string',
  tokenizer: 'string',
  host: 'string',
  port: 'string',
  mode: 'string',
  'max-queue': 'string',
  'tokens-per-dispatch': 'string',
  context: 'string',
  adapter: 'string',
  'chat-template': 'string',
} as const;

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

export async function serveCommand(argv: string[], io: Io): Promise<number> {
  const f = parseFlags('serve', argv, FLAGS);
  if (f.help) {
    io.out(SERVE_USAGE);
    return 0;
  }
  const mode = modeFlag(f.mode, 'looped');
  const host = f.host ?? '127.0.0.1';
  const port = f.port === undefined ? DEFAULT_PORT : intFlag('port', f.port, 0, 65535);
  const maxQueue = f['max-queue'] === undefined ? DEFAULT_MAX_QUEUE : intFlag('max-queue', f['max-queue'], 0);
  if (f['tokens-per-dispatch'] !== undefined && mode !== 'looped') {
    throw new KloopError(`--tokens-per-dispatch: only the looped mode decodes several tokens per dispatch (--mode is ${mode})`);
  }
  const k = f['tokens-per-dispatch'] === undefined ? undefined : intFlag('tokens-per-dispatch', f['tokens-per-dispatch'], 1, MAX_TOKENS_PER_DISPATCH);
  const context = f.context === undefined ? undefined : intFlag('context', f.context, 1);

  if (f.model === undefined) checkModelsEnv(io);
  const model = await openModelHost({
    model: pathFlag('model', f.model),
    tokenizer: pathFlag('tokenizer', f.tokenizer),
    mode,
    tokensPerDispatch: k,
    context,
    adapter: f.adapter,
    chatTemplate: pathFlag('chat-template', f['chat-template']),
    log: (line) => io.err(`${line}\n`),
  });
  let server;
  try {
    server = await startServer(model, { host, port, maxQueue, log: (line) => io.err(`${line}\n`) });
  } catch (e) {
    await model.close();
    const err = e as NodeJS.ErrnoException;
    throw new KloopError(`--host ${host} --port ${port}: cannot listen (${err.code ?? err.message})`);
  }
  if (!LOOPBACK.test(host)) {
    io.err(`kloop serve: listening on ${host}, reachable from other machines; the server has no authentication\n`);
  }
  io.err(
    `kloop serve: ${server.url}/v1 (model ${model.id}, ${model.mode} on ${model.adapterName}, context ${model.contextLength}, ` +
      `chat template: ${model.chat.origin}, queue ${maxQueue})\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  io.err('kloop serve: shutting down\n');
  // The server ends every request first (a running generation stops at its next token): the
  // device is destroyed only once nothing runs on it.
  await server.close();
  await model.close();
  return 0;
}
