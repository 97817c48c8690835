/** `kloop convert`: write a model kloop loads as a Hugging Face folder (convertToHF) or a GGUF file (convertToGguf). */
import { KloopError } from '../errors.ts';
import { convertToHF } from '../loader/index.ts';
import { GGUF_OUT_TYPES, type GgufOutType, convertToGguf } from '../loader/gguf-write.ts';
import { parseFlags, pathFlag } from './args.ts';
import { openModel } from './engine.ts';
import type { Io } from './io.ts';

export const CONVERT_USAGE = `usage: kloop convert --model PATH --out DIR|FILE.gguf [--type TYPE]
  --model PATH      the model to convert (llama2.c .bin, .gguf, or Hugging Face folder)
  --tokenizer PATH  tokenizer of a llama2.c checkpoint (default: the tok*.bin beside it)
  --out DIR         folder to write config.json, tokenizer.json and model.safetensors to
                    (created if missing)
  --out FILE.gguf   a GGUF v3 file (llama architecture) that llama.cpp reads
  --type TYPE       weight type of the GGUF file: ${GGUF_OUT_TYPES.join(', ')} (default f32);
                    tensors whose rows do not fit the type fall back as llama.cpp does
`;

const FLAGS = { model: 'string', tokenizer: 'string', out: 'string', type: 'string' } as const;

export async function convertCommand(argv: string[], io: Io): Promise<number> {
  const f = parseFlags('convert', argv, FLAGS);
  if (f.help) {
    io.out(CONVERT_USAGE);
    return 0;
  }
  if (pathFlag('model', f.model) === undefined) throw new KloopError('--model: required (the model to convert)');
  const out = pathFlag('out', f.out);
  if (out === undefined) throw new KloopError('--out: required (the folder or .gguf file to write)');
  const gguf = out.toLowerCase().endsWith('.gguf');
  if (f.type !== undefined) {
    if (!(GGUF_OUT_TYPES as readonly string[]).includes(f.type)) {
      throw new KloopError(`--type: unknown type "${f.type}" (one of ${GGUF_OUT_TYPES.join(', ')})`);
    }
    if (!gguf) throw new KloopError('--type: only GGUF output (--out ending in .gguf) takes a weight type');
  }
  const model = await openModel(f);
  if (gguf) {
    const type = (f.type ?? 'f32') as GgufOutType;
    const r = await convertToGguf(model, out, type);
    const byType = new Map<string, { n: number; worst: number }>();
    for (const t of r.tensors) {
      const e = byType.get(t.type) ?? { n: 0, worst: 0 };
      byType.set(t.type, { n: e.n + 1, worst: Math.max(e.worst, t.rel) });
    }
    const mix = [...byType].map(([t, e]) => `${t} x ${e.n}${e.worst > 0 ? ` (RMS error up to ${(100 * e.worst).toFixed(2)}%)` : ''}`).join(', ');
    io.err(`wrote ${out} (GGUF, ${type}, ${r.bytes} bytes; matrices ${mix}) from ${model.source}\n`);
    return 0;
  }
  await convertToHF(model, out);
  io.err(`wrote ${out} (config.json, tokenizer.json, model.safetensors) from ${model.source}\n`);
  return 0;
}
