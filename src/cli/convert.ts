/** `kloop convert`: write a model kloop loads as a Hugging Face folder (convertToHF) or a GGUF file (convertToGguf). */
import { stat } from 'node:fs/promises';
import { KloopError } from '../errors.ts';
import { convertToHF } from '../loader/index.ts';
import { GGUF_OUT_TYPES, type GgufOutType, convertToGguf, ggufTensorType } from '../loader/gguf-write.ts';
import { SYNTHETIC_SHAPES, syntheticModel } from '../loader/synthetic.ts';
import type { LoadedModel } from '../loader/types.ts';
import { atLeastFlag, parseFlags, pathFlag } from './args.ts';
import { checkShapeFlags, openModel } from './engine.ts';
import type { Io } from './io.ts';

export const CONVERT_USAGE = `usage: kloop convert --model PATH|--shape NAME --out DIR|FILE.gguf [--type TYPE]
  --model PATH      the model to convert (llama2.c .bin, .gguf, or Hugging Face folder)
  --shape NAME      a real-shaped SYNTHETIC model instead (random blocks generated in each
                    tensor's type, a placeholder vocabulary), to benchmark kloop and llama.cpp
                    on the same file of a real shape; one of
                    ${Object.keys(SYNTHETIC_SHAPES).join(', ')}
  --seed N          seed of the synthetic weights, with --shape (default 1234)
  --tokenizer PATH  tokenizer of a llama2.c --model (default: the tok*.bin beside it)
  --out DIR         folder to write config.json, tokenizer.json and model.safetensors to
                    (created if missing)
  --out FILE.gguf   a GGUF v3 file (llama architecture) that llama.cpp reads
  --type TYPE       weight type of the GGUF file: ${GGUF_OUT_TYPES.join(', ')} (default f32);
                    tensors whose rows do not fit the type fall back as llama.cpp does
`;

const FLAGS = { model: 'string', shape: 'string', seed: 'string', tokenizer: 'string', out: 'string', type: 'string' } as const;

export async function convertCommand(argv: string[], io: Io): Promise<number> {
  const f = parseFlags('convert', argv, FLAGS);
  if (f.help) {
    io.out(CONVERT_USAGE);
    return 0;
  }
  if (f.shape !== undefined && f.model !== undefined) throw new KloopError('--model and --shape: give one of them');
  if (f.shape !== undefined && !(f.shape in SYNTHETIC_SHAPES)) throw new KloopError(`--shape ${f.shape}: unknown shape (known: ${Object.keys(SYNTHETIC_SHAPES).join(', ')})`);
  if (f.shape === undefined && pathFlag('model', f.model) === undefined) throw new KloopError('--model: required (the model to convert, or --shape NAME)');
  checkShapeFlags(f);
  const out = pathFlag('out', f.out);
  if (out === undefined) throw new KloopError('--out: required (the folder or .gguf file to write)');
  const gguf = out.toLowerCase().endsWith('.gguf');
  await checkOut(out, gguf);
  if (f.type !== undefined) {
    if (!(GGUF_OUT_TYPES as readonly string[]).includes(f.type)) {
      throw new KloopError(`--type: unknown type "${f.type}" (one of ${GGUF_OUT_TYPES.join(', ')})`);
    }
    if (!gguf) throw new KloopError('--type: only GGUF output (--out ending in .gguf) takes a weight type');
  }
  const type = (f.type ?? 'f32') as GgufOutType;
  const seed = f.seed === undefined ? 1234 : atLeastFlag('--seed', f.seed, 0);
  const model = f.shape !== undefined ? syntheticGgufModel(f.shape, seed, type) : await openModel(f, io);
  if (gguf) {
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

/** Rejects an --out that exists as the wrong kind (a file where a folder is meant, or the reverse), before any work. */
async function checkOut(out: string, gguf: boolean): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(out)).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new KloopError(`--out ${out}: a folder in the path is a file`);
    return; // missing: written (created) by the conversion, which names any other error
  }
  if (gguf && isDir) throw new KloopError(`--out ${out}: is a folder (--out FILE.gguf names the GGUF file to write)`);
  if (!gguf && !isDir) {
    throw new KloopError(`--out ${out}: exists and is not a folder (--out takes a folder for a Hugging Face model, created if missing, or a FILE.gguf)`);
  }
}

/**
 * A synthetic model of `shape` whose matrices are generated in the types a GGUF file of `type`
 * holds (llama.cpp's per-tensor mix, ggufTensorType), so writing it requantizes nothing, with a
 * placeholder vocabulary.
 */
function syntheticGgufModel(shape: string, seed: number, type: GgufOutType): LoadedModel {
  const nLayers = SYNTHETIC_SHAPES[shape]!.nLayers;
  return syntheticModel(shape, seed, type, { vocab: true, pick: (role) => ggufTensorType(type, { ...role, nLayers }) });
}
