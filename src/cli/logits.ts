/**
 * `kloop logits`: teacher-forced logits of a token list through the batched forward (a chunk of
 * positions per weight read),
 * written as positions x vocab little-endian float32 (the layout of the reference fixtures).
 */
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { KloopError } from '../errors.ts';
import { intListFlag, modeFlag, parseFlags, pathFlag } from './args.ts';
import { openModel, sessionFromFlags } from './engine.ts';
import type { Io } from './io.ts';

export const LOGITS_USAGE = `usage: kloop logits --tokens IDS --out FILE [options]
  --tokens IDS      comma-separated token ids, fed at positions 0, 1, ... (e.g. 1,403,407)
  --out FILE        output: positions x vocab little-endian float32; row p is the logits
                    after feeding token p at position p
  --model PATH      as for kloop generate (default stories260K)
  --tokenizer PATH  tokenizer of a llama2.c checkpoint
  --mode MODE       reference | per-op | per-layer | looped (default looped)
  --adapter NAME    WebGPU adapter whose name contains NAME
  --context N       KV-cache positions (default: the model's, at most 2048)
`;

const FLAGS = {
  model: 'string',
  tokenizer: 'string',
  tokens: 'string',
  out: 'string',
  mode: 'string',
  adapter: 'string',
  context: 'string',
} as const;

export async function logitsCommand(argv: string[], io: Io): Promise<number> {
  const f = parseFlags('logits', argv, FLAGS);
  if (f.help) {
    io.out(LOGITS_USAGE);
    return 0;
  }
  if (f.tokens === undefined) throw new KloopError('--tokens: required (comma-separated token ids)');
  const out = pathFlag('out', f.out);
  if (out === undefined) throw new KloopError('--out: required (the file to write the logits to)');
  const mode = modeFlag(f.mode, 'looped');
  const ids = intListFlag('tokens', f.tokens, 0, Number.MAX_SAFE_INTEGER);

  if (mode === 'reference' && f.adapter !== undefined) throw new KloopError('--adapter: the reference mode runs on the CPU and opens no adapter');
  const model = await openModel(f, io);
  const { vocabSize } = model.config;
  const session = sessionFromFlags(model, f, io);
  const context = session.context;
  const bad = ids.find((t) => t >= vocabSize);
  if (bad !== undefined) throw new KloopError(`--tokens: id ${bad} is outside the vocabulary of ${model.name} (0..${vocabSize - 1})`);
  if (ids.length > context) throw new KloopError(`--tokens: ${ids.length} tokens do not fit the context of ${context}`);

  const cannotWrite = (e: unknown) => new KloopError(`--out ${out}: cannot write (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  // Open the output before the (possibly slow) device work, so a bad path fails first.
  let fh: FileHandle;
  try {
    fh = await open(out, 'w');
  } catch (e) {
    throw cannotWrite(e);
  }
  let written = false;
  try {
    const bytes = Buffer.alloc(ids.length * vocabSize * 4);
    try {
      const executor = await session.executor({ mode, tokensPerDispatch: 1 });
      // The batched forward: a chunk of positions per weight read.
      const rows = executor.forwardMany ? await executor.forwardMany(ids, 0, 'all') : [];
      for (let p = 0; p < ids.length; p++) {
        const logits = rows[p] ?? (await executor.forward(ids[p]!, p));
        for (let i = 0; i < vocabSize; i++) bytes.writeFloatLE(logits[i]!, (p * vocabSize + i) * 4);
      }
    } finally {
      await session.dispose();
    }
    await fh.write(bytes).catch((e) => {
      throw cannotWrite(e);
    });
    written = true;
  } finally {
    await fh.close();
    if (!written) await unlink(out).catch(() => {});
  }
  io.err(`wrote ${out}: ${ids.length} x ${vocabSize} float32 (${mode})\n`);
  return 0;
}
