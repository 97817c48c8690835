/**
 * Local files on the demo page: which of the files dropped or chosen is the model and which its
 * tokenizer, told by their first bytes (names only appear in messages), and the page's wording of
 * load errors, which says what to drop or which field to fill instead of the library's terms.
 * The loader (load.ts) checks the files in full; this only sorts them.
 */
import type { LoadProblem } from './load.ts';
import { message } from './page.ts';

/** What a file looks like from its first bytes. */
export type FileKind = 'empty' | 'gguf' | 'llama2c' | 'tokenizer' | 'json' | 'sentencepiece' | 'unknown';

export interface Pairing {
  model: File;
  tokenizer?: File;
  /** Files left out, each with the reason. */
  ignored: { file: File; why: string }[];
}

const HEAD_BYTES = 64;

/** The seven int32 of a llama2.c header, plausible as a model's shape (the loader checks the rest). */
function llama2cHeader(head: Uint8Array): boolean {
  if (head.length < 28) return false;
  const dv = new DataView(head.buffer, head.byteOffset, 28);
  const [dim = 0, hidden = 0, layers = 0, heads = 0, kvHeads = 0, vocab = 0, seqLen = 0] = Array.from({ length: 7 }, (_, i) => dv.getInt32(4 * i, true));
  const within = (x: number, hi: number) => x >= 1 && x <= hi;
  return (
    within(dim, 1 << 16) && within(hidden, 1 << 18) && within(layers, 1024) && within(heads, dim) && within(kvHeads, heads) &&
    dim % heads === 0 && heads % kvHeads === 0 && within(Math.abs(vocab), 1 << 22) && within(seqLen, 1 << 22)
  );
}

/** A llama2.c tokenizer .bin: int32 max_token_length, then {f32 score, int32 length, bytes} per token. */
function llama2cTokenizer(head: Uint8Array, size: number): boolean {
  if (head.length < 12) return false;
  const dv = new DataView(head.buffer, head.byteOffset, 12);
  const maxLen = dv.getInt32(0, true);
  const len = dv.getInt32(8, true);
  return maxLen >= 1 && maxLen <= 4096 && Number.isFinite(dv.getFloat32(4, true)) && len >= 1 && len <= maxLen && 12 + len <= size;
}

/** A sentencepiece ModelProto (tokenizer.model): tag 0x0a, a varint length, then the first piece's tag 0x0a. */
function sentencepiece(head: Uint8Array): boolean {
  if (head.length < 4 || head[0] !== 0x0a) return false;
  let i = 1;
  while (i < 6 && head[i]! & 0x80) i++;
  return head[i + 1] === 0x0a;
}

export async function fileKind(file: Blob): Promise<FileKind> {
  if (file.size === 0) return 'empty';
  const head = new Uint8Array(await file.slice(0, HEAD_BYTES).arrayBuffer());
  if (head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46) return 'gguf';
  if (sentencepiece(head)) return 'sentencepiece';
  if (new TextDecoder().decode(head).trimStart().startsWith('{')) return 'json';
  if (llama2cHeader(head)) return 'llama2c';
  if (llama2cTokenizer(head, file.size)) return 'tokenizer';
  return 'unknown';
}

const names = (files: File[]): string => files.map((f) => f.name).join(', ');
const DROP_MODEL = 'drop a .gguf, or a llama2.c .bin (such as stories260K.bin) with its tokenizer (tok*.bin or tokenizer.json)';
const SENTENCEPIECE = 'is a sentencepiece tokenizer.model, which this page cannot read';

/** The model and its tokenizer among `files`, or an Error saying what to drop. */
export async function pairFiles(files: File[]): Promise<Pairing> {
  const kinds = await Promise.all(files.map(async (file) => ({ file, kind: await fileKind(file) })));
  const of = (...k: FileKind[]): File[] => kinds.filter((x) => k.includes(x.kind)).map((x) => x.file);
  const models = of('gguf', 'llama2c');
  const tokenizers = of('tokenizer', 'json');
  if (models.length > 1) throw new Error(`${names(models)}: several models; drop one (a llama2.c .bin with its tokenizer)`);
  const model = models[0];
  if (!model) {
    const [empty] = of('empty');
    const [tok] = of('tokenizer');
    const [sp] = of('sentencepiece');
    const [json] = of('json');
    if (tok) throw new Error(`${tok.name} is a tokenizer, not a model: drop the model file (a llama2.c .bin such as stories260K.bin) together with it`);
    if (sp) throw new Error(`${sp.name} ${SENTENCEPIECE}, and no model came with it: ${DROP_MODEL}`);
    if (json) throw new Error(`${json.name} is a JSON file (a tokenizer.json?), not a model: drop the model file together with it`);
    if (empty) throw new Error(`${empty.name} is empty (0 bytes): ${DROP_MODEL}`);
    throw new Error(`${names(files)}: not a model file (neither GGUF nor a llama2.c checkpoint); ${DROP_MODEL}`);
  }
  const ignored = (keep: File[], why: (f: File) => string) =>
    files.filter((f) => !keep.includes(f)).map((file) => ({ file, why: why(file) }));
  if (of('gguf').length === 1) {
    return { model, ignored: ignored([model], (f) => (tokenizers.includes(f) ? 'a GGUF file holds its own tokenizer' : 'not needed with a GGUF file')) };
  }
  if (tokenizers.length > 1) throw new Error(`${names(tokenizers)}: several tokenizers for ${model.name}; drop only its own`);
  const tokenizer = tokenizers[0];
  if (!tokenizer) {
    const [sp] = of('sentencepiece');
    if (sp) throw new Error(`${sp.name} ${SENTENCEPIECE}: drop the llama2.c tokenizer (tok*.bin) or a tokenizer.json together with ${model.name}`);
    throw new Error(`${model.name} is a llama2.c checkpoint: drop the tokenizer file (tok*.bin or tokenizer.json) together with the .bin`);
  }
  return { model, tokenizer, ignored: ignored([model, tokenizer], () => 'neither the model nor its tokenizer') };
}

/** The page's words for a load error: what to drop (local files) or which field to fill (URLs). */
export function loadMessage(e: unknown, tab: 'served' | 'url' | 'files'): string {
  const text = message(e);
  const problem = (e as { problem?: LoadProblem }).problem;
  const cut = text.indexOf(': ');
  const what = cut > 0 ? text.slice(0, cut) : 'the file';
  const url = tab === 'url';
  switch (problem) {
    case 'needs-tokenizer':
      return url
        ? `${what} is a llama2.c checkpoint: fill in Tokenizer URL with its tokenizer (tok*.bin or tokenizer.json)`
        : `${what} is a llama2.c checkpoint: drop the tokenizer file (tok*.bin or tokenizer.json) together with the .bin`;
    case 'tokenizer-not-model':
      return url
        ? `${what} is a tokenizer, not a model: put it in Tokenizer URL, and the model's URL (.gguf or llama2.c .bin) in Model URL`
        : `${what} is a tokenizer, not a model: drop the model file together with it`;
    case 'not-a-tokenizer':
      return `${what} is a model, not a tokenizer${url ? ': check Tokenizer URL' : ''}`;
    case 'sentencepiece':
      return `${what} ${SENTENCEPIECE}: use the llama2.c tokenizer (tok*.bin) or a tokenizer.json${url ? ' in Tokenizer URL' : ''}`;
    default:
      return text;
  }
}
