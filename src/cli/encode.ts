/**
 * `kloop encode`: the token ids of --text as a JSON array, with the tokenizer of --model or a
 * tokenizer file alone (--tokenizer: a llama2.c tok*.bin or a tokenizer.json).
 */
import { KloopError } from '../errors.ts';
import { JsonTokenizer, loadLlama2cTokenizer } from '../loader/index.ts';
import type { Tokenizer } from '../loader/types.ts';
import { parseJson, readSmallFile } from '../loader/util.ts';
import { parseFlags, pathFlag } from './args.ts';
import { openModel } from './engine.ts';
import type { Io } from './io.ts';

export const ENCODE_USAGE = `usage: kloop encode --text TEXT [--model PATH | --tokenizer PATH]
  --text TEXT       text to encode (BOS is put first when the tokenizer adds one)
  --model PATH      use this model's tokenizer (default stories260K when neither is given)
  --tokenizer PATH  a llama2.c tokenizer .bin or a tokenizer.json; alone, only the tokenizer is
                    loaded; with a llama2.c --model, the tokenizer of that model
`;

const FLAGS = { model: 'string', tokenizer: 'string', text: 'text' } as const;

export async function encodeCommand(argv: string[], io: Io): Promise<number> {
  const f = parseFlags('encode', argv, FLAGS);
  if (f.help) {
    io.out(ENCODE_USAGE);
    return 0;
  }
  if (f.text === undefined) throw new KloopError('--text: required (the text to encode)');
  const tokPath = pathFlag('tokenizer', f.tokenizer);
  const tokenizer = f.model === undefined && tokPath !== undefined ? await loadTokenizerFile(tokPath) : (await openModel(f, io)).tokenizer;
  io.out(JSON.stringify(tokenizer.encode(f.text)) + '\n');
  return 0;
}

/** A tokenizer file on its own: a tokenizer.json (by extension) or a llama2.c tokenizer .bin. */
async function loadTokenizerFile(path: string): Promise<Tokenizer> {
  if (!path.toLowerCase().endsWith('.json')) return loadLlama2cTokenizer(path);
  const json = parseJson(path, (await readSmallFile(path, 1 << 28)).toString('utf8'));
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new KloopError(`${path}: not a JSON object`);
  const bosId = templateBos(json as Record<string, unknown>);
  return new JsonTokenizer(json as Record<string, unknown>, { source: path, bosId, eosId: null });
}

/**
 * The id of the special token a tokenizer.json's TemplateProcessing puts before a single text
 * (BOS), or null: with no model config, that template is what says a BOS is added.
 */
function templateBos(json: Record<string, unknown>): number | null {
  const find = (pp: unknown): number | null => {
    if (!pp || typeof pp !== 'object') return null;
    const o = pp as { type?: unknown; single?: unknown; special_tokens?: unknown; processors?: unknown };
    if (o.type === 'Sequence' && Array.isArray(o.processors)) {
      for (const p of o.processors) {
        const id = find(p);
        if (id !== null) return id;
      }
      return null;
    }
    if (o.type !== 'TemplateProcessing' || !Array.isArray(o.single)) return null;
    const name = (o.single[0] as { SpecialToken?: { id?: unknown } } | undefined)?.SpecialToken?.id;
    if (typeof name !== 'string') return null;
    const ids = (o.special_tokens as Record<string, { ids?: unknown }> | undefined)?.[name]?.ids;
    return Array.isArray(ids) && typeof ids[0] === 'number' ? ids[0] : null;
  };
  return find(json.post_processor);
}
