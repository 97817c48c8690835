/** `kloop convert`: write a model kloop loads as a Hugging Face folder (convertToHF). */
import { KloopError } from '../errors.ts';
import { convertToHF } from '../loader/index.ts';
import { parseFlags, pathFlag } from './args.ts';
import { openModel } from './engine.ts';
import type { Io } from './io.ts';

export const CONVERT_USAGE = `usage: kloop convert --model PATH --out DIR
  --model PATH      the model to convert (llama2.c .bin, .gguf, or Hugging Face folder)
  --tokenizer PATH  tokenizer of a llama2.c checkpoint (default: the tok*.bin beside it)
  --out DIR         folder to write config.json, tokenizer.json and model.safetensors to
                    (created if missing)
`;

const FLAGS = { model: 'string', tokenizer: 'string', out: 'string' } as const;

export async function convertCommand(argv: string[], io: Io): Promise<number> {
  const f = parseFlags('convert', argv, FLAGS);
  if (f.help) {
    io.out(CONVERT_USAGE);
    return 0;
  }
  if (pathFlag('model', f.model) === undefined) throw new KloopError('--model: required (the model to convert)');
  const out = pathFlag('out', f.out);
  if (out === undefined) throw new KloopError('--out: required (the folder to write)');
  const model = await openModel(f);
  await convertToHF(model, out);
  io.err(`wrote ${out} (config.json, tokenizer.json, model.safetensors) from ${model.source}\n`);
  return 0;
}
