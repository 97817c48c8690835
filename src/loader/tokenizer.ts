/**
 * Tokenization has one code path: a Hugging Face tokenizer.json run through
 * @huggingface/tokenizers. Vocabularies that come without one (llama2.c tokenizer .bin,
 * GGUF tokenizer.ggml.*) are turned into a Llama-style tokenizer.json first:
 *
 * - model: BPE with byte_fallback over the sentencepiece pieces ("▁" for a space);
 * - normalizer: Prepend "▁" (the sentencepiece dummy prefix) then Replace " " -> "▁";
 * - merges: every split (left, right) of a piece P where left and right are pieces too,
 *   ranked by P's score, highest first. BPE then repeatedly merges the adjacent pair of lowest
 *   rank (leftmost first on a tie), which is sentencepiece's (and llama2.c's) rule "merge the
 *   adjacent pair whose merged piece has the highest score";
 * - decoder: Replace "▁" -> " ", ByteFallback, Fuse, Strip one leading space;
 * - added_tokens: <unk>, <s>, </s> (special, so decode skips them).
 */
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import type { Tokenizer } from './types.ts';
import { KloopError } from '../errors.ts';
import { fileError, need } from './fail.ts';

/** Sentencepiece piece types (the GGUF tokenizer.ggml.token_type values). */
export const enum PieceType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

/** A sentencepiece-style vocabulary: pieces use "▁" for a space. */
export interface SpmVocab {
  pieces: string[];
  scores: ArrayLike<number>;
  types: ArrayLike<number>;
  bosId: number | null;
  eosId: number | null;
  unkId: number | null;
  /** Add BOS when encoding (default true). */
  addBos?: boolean;
}

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/**
 * Read a llama2.c tokenizer .bin: int32 max_token_length, then per token {f32 score,
 * int32 length, bytes}. Reads `count` tokens when given (the model's vocab size; the file must
 * end there), else until the end of the file. Ids 0/1/2 are <unk>/<s>/</s>; "<0xNN>" pieces are byte fallback;
 * a space in a piece stands for "▁".
 */
export function parseLlama2cTokenizer(buf: Uint8Array, path: string, count?: number): SpmVocab {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  need(buf.length >= 4, path, 'truncated tokenizer file (no header)');
  const maxLen = dv.getInt32(0, true);
  need(maxLen > 0 && maxLen <= 4096, path, `bad max_token_length ${maxLen} in tokenizer header`);
  const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const pieces: string[] = [];
  const scores: number[] = [];
  let o = 4;
  while (count === undefined ? o < buf.length : pieces.length < count) {
    const id = pieces.length;
    need(o + 8 <= buf.length, path, `truncated tokenizer file at token ${id}${count !== undefined ? ` (expected ${count} tokens)` : ''}`);
    const score = dv.getFloat32(o, true);
    const len = dv.getInt32(o + 4, true);
    o += 8;
    need(Number.isFinite(score), path, `token ${id} has a non-finite score`);
    need(len > 0 && len <= maxLen, path, `token ${id} has bad length ${len} (max_token_length ${maxLen})`);
    need(o + len <= buf.length, path, `truncated tokenizer file at token ${id}`);
    let text: string;
    try {
      text = dec.decode(buf.subarray(o, o + len));
    } catch {
      throw fileError(path, `token ${id} is not valid UTF-8`);
    }
    o += len;
    pieces.push(text);
    scores.push(score);
  }
  need(pieces.length >= 3, path, `tokenizer has ${pieces.length} tokens (at least <unk>, <s>, </s> expected)`);
  // llama2.c writes exactly vocab_size tokens: more is another model's tokenizer, whose ids past
  // the model's vocabulary would be cut off and whose pieces would not be the model's.
  if (count !== undefined) need(o === buf.length, path, `the tokenizer holds more than the model's ${count} tokens (${buf.length - o} bytes after token ${count - 1}): the tokenizer of another model?`);
  const types = pieces.map((p, i) => {
    if (i === 0) return PieceType.Unknown;
    if (i === 1 || i === 2) return PieceType.Control;
    if (BYTE_PIECE.test(p)) return PieceType.Byte;
    return PieceType.Normal;
  });
  // llama2.c writes BOS/EOS as "\n<s>\n" and "\n</s>\n"; name them as sentencepiece does.
  pieces[0] = pieces[0]!.trim() || '<unk>';
  pieces[1] = pieces[1]!.trim() || '<s>';
  pieces[2] = pieces[2]!.trim() || '</s>';
  for (let i = 3; i < pieces.length; i++) if (types[i] === PieceType.Normal) pieces[i] = pieces[i]!.replaceAll(' ', '\u2581');
  return { pieces, scores, types, bosId: 1, eosId: 2, unkId: 0, addBos: true };
}

/** Build a Llama-style tokenizer.json object (see the top of this file) from a sentencepiece vocabulary. */
export function buildSpmTokenizerJson(v: SpmVocab, source: string): Record<string, unknown> {
  const n = v.pieces.length;
  need(v.scores.length === n && v.types.length === n, source, 'tokenizer pieces, scores and types differ in length');
  const ids = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const p = v.pieces[i]!;
    need(typeof p === 'string' && p.length > 0, source, `token ${i} is empty`);
    const prev = ids.get(p);
    need(prev === undefined, source, `duplicate token ${JSON.stringify(p)} (ids ${prev} and ${i})`);
    ids.set(p, i);
  }
  const mergeable = (id: number | undefined): id is number =>
    id !== undefined && (v.types[id] === PieceType.Normal || v.types[id] === PieceType.UserDefined);

  // Every split of every piece whose halves are pieces, ranked by the merged piece's score.
  const merges: { l: string; r: string; score: number; id: number; k: number }[] = [];
  for (let id = 0; id < n; id++) {
    if (!mergeable(id)) continue;
    const chars = Array.from(v.pieces[id]!);
    if (chars.length < 2) continue;
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join('');
      const r = chars.slice(k).join('');
      if (mergeable(ids.get(l)) && mergeable(ids.get(r))) merges.push({ l, r, score: v.scores[id]!, id, k });
    }
  }
  merges.sort((a, b) => b.score - a.score || a.id - b.id || a.k - b.k);

  const name = (id: number | null) => (id === null ? null : v.pieces[id]!);
  const added: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const t = v.types[i];
    if (t === PieceType.Unknown || t === PieceType.Control) {
      added.push({ id: i, content: v.pieces[i], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    }
  }
  const bos = name(v.bosId);
  const addBos = v.addBos ?? true;
  const postProcessor =
    bos !== null && addBos
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [v.bosId], tokens: [bos] } },
        }
      : null;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '\u2581' },
        { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      ],
    },
    pre_tokenizer: null,
    post_processor: postProcessor,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: name(v.unkId),
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(v.pieces.map((p, i) => [p, i])),
      merges: merges.map((m) => [m.l, m.r]),
    },
  };
}

/** GPT-2 byte-level alphabet: the character standing for each byte, reversed. */
const BYTE_LEVEL_DECODE: Map<string, number> = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let k = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + k++);
    }
  }
  return new Map(bs.map((b, i) => [String.fromCharCode(cs[i]!), b]));
})();

function findDecoder(d: unknown, type: string): Record<string, unknown> | null {
  if (!d || typeof d !== 'object') return null;
  const o = d as Record<string, unknown>;
  if (o.type === type) return o;
  if (o.type === 'Sequence' && Array.isArray(o.decoders)) {
    for (const c of o.decoders) {
      const f = findDecoder(c, type);
      if (f) return f;
    }
  }
  return null;
}

export interface JsonTokenizerOptions {
  /** Where the tokenizer came from, for messages. */
  source: string;
  bosId: number | null;
  eosId: number | null;
  /** Add BOS when encoding with bos true (default: when bosId is set). */
  addBos?: boolean;
  /** The sentencepiece vocabulary the tokenizer.json was built from (llama2.c, GGUF). */
  spm?: SpmVocab;
}

/**
 * A tokenizer.json run through @huggingface/tokenizers.
 *
 * Streaming (decodeStep): each token id maps to the bytes it adds (a "▁" piece to its UTF-8
 * with spaces, a <0xNN> byte token to that byte, a byte-level piece to its bytes, a special
 * token to nothing). decodeStep feeds those bytes to a streaming TextDecoder, so a multi-byte
 * UTF-8 character split across byte tokens is held back until complete and then returned in
 * one piece; bytes that can never complete a character come out as U+FFFD, as decode() does.
 * The stream continues while each call's `prev` is the previous call's `id`; any other `prev`
 * (or BOS) starts a new stream and drops held-back bytes. flush() returns what is still held
 * back at the end of a stream. After BOS the first piece loses its leading space, like llama2.c
 * (only for tokenizers whose decoder strips the sentencepiece dummy prefix).
 */
export class JsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** The sentencepiece vocabulary behind this tokenizer, when it was built from one (what a GGUF writer stores). */
  readonly spm: SpmVocab | null;
  private readonly hf: HFTokenizer;
  private readonly jsonText: string;
  private readonly addBos: boolean;
  private readonly special: Set<number>;
  private readonly added: Set<number>;
  private readonly source: string;
  private readonly bytesOf = new Map<number, Uint8Array>();
  private readonly pieceOf: (string | undefined)[];
  private readonly byteLevel: boolean;
  private readonly spaceChar: string | null;
  private readonly byteFallback: boolean;
  private readonly stripAfterBos: boolean;
  private stream: TextDecoder | null = null;
  private streamLast: number | null = null;

  constructor(json: Record<string, unknown>, opts: JsonTokenizerOptions) {
    const { source } = opts;
    need(json && typeof json === 'object' && !Array.isArray(json), source, 'tokenizer.json is not an object');
    const model = json.model as Record<string, unknown> | undefined;
    need(model && typeof model === 'object', source, 'tokenizer.json has no "model"');
    need(model.vocab && typeof model.vocab === 'object', source, 'tokenizer.json model has no "vocab"');
    const full = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...json,
    };
    need(Array.isArray(full.added_tokens), source, 'tokenizer.json "added_tokens" is not a list');
    checkTokenIds(model.vocab, full.added_tokens, source);
    try {
      this.hf = new HFTokenizer(full, { clean_up_tokenization_spaces: false });
      // Some broken parts (a post_processor template that is not a list...) only fail when used.
      this.hf.encode('a', { add_special_tokens: false });
    } catch (e) {
      throw fileError(source, `unsupported or broken tokenizer.json (${(e as Error).message})`);
    }
    this.jsonText = JSON.stringify(json);
    this.bosId = opts.bosId;
    this.eosId = opts.eosId;
    this.spm = opts.spm ?? null;
    this.addBos = opts.addBos ?? opts.bosId !== null;

    const vocab = this.hf.get_vocab(true);
    let size = 0;
    this.pieceOf = [];
    for (const [piece, id] of vocab) {
      need(Number.isSafeInteger(id) && id >= 0 && id < 1 << 24, source, `bad token id ${id} for ${JSON.stringify(piece)}`);
      this.pieceOf[id] = piece;
      if (id + 1 > size) size = id + 1;
    }
    this.vocabSize = size;
    this.source = source;
    this.special = new Set();
    this.added = new Set();
    for (const t of full.added_tokens as { id?: unknown; special?: unknown }[]) {
      if (t && typeof t.id === 'number') this.added.add(t.id);
      if (t && t.special === true && typeof t.id === 'number') this.special.add(t.id);
    }
    const decoder = full.decoder;
    this.byteLevel = findDecoder(decoder, 'ByteLevel') !== null;
    const meta = findDecoder(decoder, 'Metaspace');
    const replace = findDecoder(decoder, 'Replace');
    const replacePattern = (replace?.pattern as { String?: unknown } | undefined)?.String;
    this.spaceChar = meta
      ? String(meta.replacement ?? '\u2581')
      : typeof replacePattern === 'string' && replace?.content === ' '
        ? replacePattern
        : null;
    this.byteFallback = findDecoder(decoder, 'ByteFallback') !== null;
    const strip = findDecoder(decoder, 'Strip');
    this.stripAfterBos =
      (strip !== null && strip.content === ' ' && Number(strip.start) >= 1) ||
      (meta !== null && meta.prepend_scheme !== 'never' && meta.add_prefix_space !== false);
  }

  encode(text: string, options?: { bos?: boolean }): number[] {
    const bos = (options?.bos ?? true) && this.addBos && this.bosId !== null;
    const ids: number[] = bos ? [this.bosId!] : [];
    if (text === '') return ids;
    const enc = this.lib('encode', () => this.hf.encode(text, { add_special_tokens: false }));
    for (const id of enc.ids) {
      if (typeof id !== 'number') throw new KloopError(`${this.source}: the text holds characters this tokenizer cannot encode (no <unk> token)`);
      ids.push(id);
    }
    return ids;
  }

  decode(ids: number[]): string {
    const keep = ids.filter((id) => this.pieceOf[id] !== undefined && !this.special.has(id));
    if (keep.length === 0) return '';
    return this.lib('decode', () => this.hf.decode(keep, { skip_special_tokens: true, clean_up_tokenization_spaces: false }));
  }

  /** Run a @huggingface/tokenizers call; its exceptions become one-line KloopErrors naming the file. */
  private lib<T>(what: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof KloopError) throw e;
      throw fileError(this.source, `tokenizer.json cannot ${what} (${(e as Error).message})`);
    }
  }

  decodeStep(prev: number, id: number): string {
    if (this.stream === null || this.streamLast !== prev || prev === this.bosId) {
      this.stream = new TextDecoder('utf-8', { ignoreBOM: true });
    }
    this.streamLast = id;
    let bytes = this.tokenBytes(id);
    if (this.stripAfterBos && prev === this.bosId && bytes.length > 0 && bytes[0] === 0x20) bytes = bytes.subarray(1);
    return this.stream.decode(bytes, { stream: true });
  }

  /** Text still held back by decodeStep (an incomplete UTF-8 sequence, as U+FFFD); ends the stream. */
  flush(): string {
    const s = this.stream ? this.stream.decode() : '';
    this.stream = null;
    this.streamLast = null;
    return s;
  }

  toJSON(): string {
    return this.jsonText;
  }

  /** The vocabulary piece of `id` as stored in tokenizer.json. */
  piece(id: number): string | undefined {
    return this.pieceOf[id];
  }

  /** The bytes token `id` contributes to the output (empty for special or unknown ids). */
  tokenBytes(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) return EMPTY;
    const cached = this.bytesOf.get(id);
    if (cached) return cached;
    const piece = this.pieceOf[id];
    let out: Uint8Array;
    if (piece === undefined || this.special.has(id)) out = EMPTY;
    else if (this.byteFallback && BYTE_PIECE.test(piece)) out = Uint8Array.of(parseInt(piece.slice(3, 5), 16));
    else if (this.byteLevel && !this.isAdded(id)) {
      const bytes: number[] = [];
      for (const ch of piece) {
        const b = BYTE_LEVEL_DECODE.get(ch);
        if (b !== undefined) bytes.push(b);
        else bytes.push(...ENCODER.encode(ch));
      }
      out = Uint8Array.from(bytes);
    } else {
      out = ENCODER.encode(this.spaceChar ? piece.replaceAll(this.spaceChar, ' ') : piece);
    }
    this.bytesOf.set(id, out);
    return out;
  }

  private isAdded(id: number): boolean {
    return this.added.has(id);
  }
}

const EMPTY = new Uint8Array(0);
const ENCODER = new TextEncoder();

/**
 * Check the ids of a tokenizer.json before @huggingface/tokenizers sees them: it stores pieces in
 * an array indexed by id and walks it up to the largest id, so a negative, fractional or huge id
 * would be dropped silently or cost minutes. Ids must be integers in [0, 2 * count + 1024).
 */
function checkTokenIds(vocab: unknown, added: unknown[], source: string): void {
  const ids: [string, unknown][] = [];
  if (Array.isArray(vocab)) {
    // Unigram: [[piece, score], ...], the id is the position.
    vocab.forEach((e, i) => {
      need(Array.isArray(e) && typeof e[0] === 'string' && typeof e[1] === 'number', source, `tokenizer.json vocab entry ${i} is not a [piece, score] pair`);
    });
  } else {
    for (const [piece, id] of Object.entries(vocab as Record<string, unknown>)) ids.push([piece, id]);
  }
  added.forEach((t, i) => {
    need(t && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string', source, `tokenizer.json added_tokens[${i}] has no "content"`);
    ids.push([(t as { content: string }).content, (t as { id?: unknown }).id]);
  });
  const count = ids.length + (Array.isArray(vocab) ? vocab.length : 0);
  const max = Math.min(2 * count + 1024, 1 << 24);
  for (const [piece, id] of ids) {
    need(
      typeof id === 'number' && Number.isInteger(id) && id >= 0 && id < max,
      source,
      `bad token id ${JSON.stringify(id)} for ${JSON.stringify(piece)} (an integer in 0..${max - 1} expected for ${count} tokens)`,
    );
  }
}

/** The tokenizer of a sentencepiece vocabulary (llama2.c .bin, GGUF). */
export function spmTokenizer(v: SpmVocab, source: string): JsonTokenizer {
  const json = buildSpmTokenizerJson(v, source);
  return new JsonTokenizer(json, { source, bosId: v.bosId, eosId: v.eosId, addBos: v.addBos ?? true, spm: v });
}

