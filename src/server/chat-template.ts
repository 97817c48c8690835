/**
 * Chat prompts for `/v1/chat/completions`: the model's own chat template (GGUF
 * `tokenizer.chat_template`, or `chat_template` in a Hugging Face folder's tokenizer_config.json),
 * rendered with @huggingface/jinja the way Hugging Face's apply_chat_template renders it
 * (`messages`, `bos_token`, `eos_token`, `add_generation_prompt: true`).
 *
 * A model without a template gets PLAIN_CHAT_TEMPLATE: one "Role: content" line per message and
 * "Assistant:" to answer after, with "\nUser:" as an extra stop string so that the model does not
 * write the user's next turn.
 */
import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string;
}

/** The template used when the model has none (documented in the README). */
export const PLAIN_CHAT_TEMPLATE =
  "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}" +
  '{% if add_generation_prompt %}Assistant:{% endif %}';

/** Stop strings the plain template adds to a request's own. */
export const PLAIN_CHAT_STOPS = ['\nUser:'];

export interface ChatFormat {
  /** Jinja source of the template. */
  readonly source: string;
  /** Where it came from: "gguf", "tokenizer_config.json", a file, or "plain" (the fallback). */
  readonly origin: string;
  /** Extra stop strings (the plain fallback's). */
  readonly stops: readonly string[];
  /**
   * The prompt text of `messages`, to be encoded WITH the BOS token: a leading BOS written by
   * the template as text is removed, so that it becomes the BOS id rather than its characters.
   */
  render(messages: ChatMessage[]): string;
}

export interface SpecialTokens {
  bos: string;
  eos: string;
}

/** A chat format from a template source; `undefined` gives the plain fallback. Throws on a template that does not parse. */
export function chatFormat(source: string | undefined, origin: string, special: SpecialTokens): ChatFormat {
  const plain = source === undefined;
  const src = source ?? PLAIN_CHAT_TEMPLATE;
  let template: Template;
  try {
    template = new Template(src);
  } catch (e) {
    throw new Error(`chat template (${origin}) does not parse: ${(e as Error).message}`);
  }
  return {
    source: src,
    origin: plain ? 'plain' : origin,
    stops: plain ? PLAIN_CHAT_STOPS : [],
    render(messages: ChatMessage[]): string {
      const text = template.render({
        messages,
        bos_token: special.bos,
        eos_token: special.eos,
        add_generation_prompt: true,
      });
      return special.bos !== '' && text.startsWith(special.bos) ? text.slice(special.bos.length) : text;
    },
  };
}

/** `chat_template` of a tokenizer_config.json: a string, or a list of named templates ("default" first). */
export function templateFromTokenizerConfig(config: unknown): string | undefined {
  if (typeof config !== 'object' || config === null) return undefined;
  const t = (config as { chat_template?: unknown }).chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.filter((x): x is { name: string; template: string } => typeof x?.name === 'string' && typeof x?.template === 'string');
    return (named.find((x) => x.name === 'default') ?? named[0])?.template;
  }
  return undefined;
}

/** A special token's text in a tokenizer_config.json (`"<s>"` or `{ "content": "<s>" }`). */
export function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}
