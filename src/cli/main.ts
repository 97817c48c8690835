/**
 * The `kloop` command: `npm run kloop -- <command> [flags]`, or `npx kloop` through bin/kloop.mjs.
 * A KloopError (bad flag, bad file, missing adapter) prints `kloop: <message>` on one line and
 * exits with its code; any other error prints its message (the stack with KLOOP_DEBUG=1). When
 * the reader of stdout goes away (`kloop generate | head`), the command stops and exits with 0.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { KloopError, OptionError } from '../errors.ts';
import { GGUF_OUT_TYPES } from '../loader/gguf-write.ts';
import { convertCommand } from './convert.ts';
import { devicesCommand } from './devices.ts';
import { encodeCommand } from './encode.ts';
import { openModel } from './engine.ts';
import { generateCommand } from './generate.ts';
import { type Io, OutputClosed, processIo } from './io.ts';
import { logitsCommand } from './logits.ts';
import { timingModelCommand } from './timing-model.ts';

export const USAGE = `usage: kloop <command> [flags]     (kloop <command> --help or kloop help <command> for its flags)

commands:
  generate       generate text from a prompt (default model stories260K, looped mode)
  logits         teacher-forced logits of a token list, as float32, to a file
  encode         token ids of a text
  convert        write a model as a Hugging Face folder (safetensors) or a GGUF file
                 (--type ${GGUF_OUT_TYPES.join('|')}); --shape: a synthetic real-shaped model
  devices        list the WebGPU adapters and the one kloop uses
  bench          measure every mode on a model
  demo           serve the browser demo
  serve          OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions)
  timing-model   the analytical SN40L / DGX H100 decode timing model

environment:
  KLOOP_MODELS   folder holding stories260K/, the default model. Looked for in order:
                 $KLOOP_MODELS/stories260K/; weights/stories260K/ in the checkout (an installed
                 package: $XDG_CACHE_HOME/kloop/models/, else ~/.cache/kloop/models/);
                 ../shared/models/stories260K/ beside the checkout; else downloaded into
                 weights/ (or the cache)
  KLOOP_DEBUG=1  print stack traces of unexpected errors
`;

type Command = (argv: string[], io: Io) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  generate: generateCommand,
  logits: logitsCommand,
  encode: encodeCommand,
  convert: convertCommand,
  devices: devicesCommand,
  // Loaded only when used: the benchmark pulls in the peers, the demo the web bundler.
  bench: async (argv, io) => (await import('./bench.ts')).benchCommand(argv, io),
  demo: async (argv, io) => (await import('./demo.ts')).demoCommand(argv, io),
  serve: async (argv, io) => (await import('./serve.ts')).serveCommand(argv, io),
  'timing-model': (argv, io) =>
    timingModelCommand(argv, {
      loadModelConfig: async (path, tokenizer) => (await openModel({ model: path, tokenizer }, io)).config,
      stdout: io.out,
      stderr: io.err,
    }),
};

const commandNamed = (name: string): Command | undefined => (Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined);

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs one command line (without the program name); returns the exit code. Never throws. */
export async function main(argv: string[], io: Io = processIo, env: Record<string, string | undefined> = process.env): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined) {
      io.err(USAGE);
      return 1;
    }
    if (name === 'help' && rest.length > 0) {
      // `kloop help CMD` is `kloop CMD --help`.
      const [cmd, ...extra] = rest as [string, ...string[]];
      if (extra.length > 0) throw new KloopError(`${extra[0]}: unexpected argument (usage: kloop help <command>)`);
      const command = commandNamed(cmd);
      if (!command) throw new KloopError(`${cmd}: unknown command (one of ${Object.keys(COMMANDS).join(', ')})`);
      return await command(['--help'], io);
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      io.out(USAGE);
      return 0;
    }
    if (name === '--version') {
      io.out(`kloop ${version()}\n`);
      return 0;
    }
    const command = commandNamed(name);
    if (!command) {
      throw new KloopError(
        name.startsWith('-') ? `${name}: unknown flag; a command comes first (see kloop --help)` : `${name}: unknown command (see kloop --help)`,
      );
    }
    return await command(rest, io);
  } catch (e) {
    return report(e, io, env);
  }
}

function report(e: unknown, io: Io, env: Record<string, string | undefined>): number {
  // The reader of stdout took what it wanted (`| head`): nothing went wrong.
  if (e instanceof OutputClosed) return 0;
  const debug = env.KLOOP_DEBUG === '1';
  if (e instanceof KloopError) {
    io.err(`kloop: ${oneLine(flagMessage(e))}\n`);
    if (debug && e.stack) io.err(`${e.stack}\n`);
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  if (debug) {
    io.err(`kloop: ${oneLine(err.message)}\n${err.stack ?? ''}\n`);
  } else {
    io.err(`kloop: ${oneLine(err.message)} (unexpected error; KLOOP_DEBUG=1 shows the stack trace)\n`);
  }
  return 1;
}

const oneLine = (s: string): string => s.replace(/\s*[\r\n]+\s*/g, ' ').trim();

/** The engine names its options (`tokensPerDispatch: ...`); the CLI speaks of its flags (`--tokens-per-dispatch: ...`). */
export function flagMessage(e: KloopError): string {
  if (!(e instanceof OptionError) || !e.message.startsWith(e.option)) return e.message;
  return `--${e.option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}${e.message.slice(e.option.length)}`;
}

/** Runs the command line of this process and exits with its code. */
export async function run(): Promise<never> {
  const code = await main(process.argv.slice(2));
  // Dawn can keep the event loop alive after the device is gone: exit explicitly once the
  // output has been handed to the OS.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(entry).href) void run();
