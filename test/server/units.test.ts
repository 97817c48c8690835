/** The server's parts on their own: chat templates, stop strings, the request queue, request checks. */
import { describe, expect, it } from 'vitest';
import { PLAIN_CHAT_STOPS, chatFormat, templateFromTokenizerConfig, tokenText } from '../../src/server/chat-template.ts';
import { ApiError, parseRequest } from '../../src/server/openai.ts';
import { QueueFullError, RequestQueue } from '../../src/server/queue.ts';
import { StopMatcher } from '../../src/server/stop.ts';

// Zephyr / ChatML-style and Llama-2-style templates, as models ship them.
const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const LLAMA2 =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  '{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}' +
  '{% for message in loop_messages %}' +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}" +
  '{% endfor %}';
const special = { bos: '<s>', eos: '</s>' };

describe('chat templates', () => {
  it('renders a ChatML template with the generation prompt', () => {
    const f = chatFormat(CHATML, 'gguf', special);
    expect(f.render([{ role: 'user', content: 'Hi' }])).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(f.stops).toEqual([]);
  });
  it('renders Llama-2 with its system block; the leading BOS text is dropped (the encoder adds the id)', () => {
    const f = chatFormat(LLAMA2, 'tokenizer_config.json', special);
    const text = f.render([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ]);
    expect(text).toBe('[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]');
    expect(() => f.render([{ role: 'assistant', content: 'x' }])).toThrow(/alternate/);
  });
  it('falls back to the plain template, with its stop string', () => {
    const f = chatFormat(undefined, 'none', special);
    expect(f.origin).toBe('plain');
    expect(f.stops).toEqual(PLAIN_CHAT_STOPS);
    expect(
      f.render([
        { role: 'system', content: 'S' },
        { role: 'user', content: 'U' },
        { role: 'assistant', content: 'A' },
        { role: 'user', content: 'V' },
      ]),
    ).toBe('System: S\nUser: U\nAssistant: A\nUser: V\nAssistant:');
  });
  it('reads tokenizer_config.json forms', () => {
    expect(templateFromTokenizerConfig({ chat_template: 'T' })).toBe('T');
    expect(templateFromTokenizerConfig({ chat_template: [{ name: 'tool_use', template: 'X' }, { name: 'default', template: 'D' }] })).toBe('D');
    expect(templateFromTokenizerConfig({})).toBeUndefined();
    expect(tokenText({ content: '<s>', lstrip: false })).toBe('<s>');
    expect(tokenText('</s>')).toBe('</s>');
  });
  it('a template that does not parse is an error naming its origin', () => {
    expect(() => chatFormat('{% for %}', 'gguf', special)).toThrow(/gguf/);
  });
});

describe('stop strings', () => {
  const run = (stops: string[], pieces: string[]) => {
    const m = new StopMatcher(stops);
    let out = '';
    for (const p of pieces) {
      const r = m.push(p);
      out += r.text;
      if (r.stopped) return { out, stopped: true };
    }
    return { out: out + m.flush(), stopped: false };
  };
  it('cuts before a stop string split over pieces, and holds back only possible starts', () => {
    expect(run(['END'], ['a', 'bE', 'N', 'Dx'])).toEqual({ out: 'ab', stopped: true });
    expect(run(['END'], ['a', 'bE', 'Nx'])).toEqual({ out: 'abENx', stopped: false });
    expect(run(['\nUser:', 'xyz'], ['hi\nUs', 'er: no'])).toEqual({ out: 'hi', stopped: true });
    expect(run([], ['a', 'b'])).toEqual({ out: 'ab', stopped: false });
    // The earliest of several stop strings wins.
    expect(run(['cd', 'b'], ['abcd'])).toEqual({ out: 'a', stopped: true });
  });
  it('releases text as soon as it cannot start a stop string', () => {
    const m = new StopMatcher(['STOP']);
    expect(m.push('hello S').text).toBe('hello ');
    expect(m.push('x').text).toBe('Sx');
  });
});

describe('request queue', () => {
  it('runs one at a time, first come first served; refuses past maxWaiting; an aborted waiter leaves', async () => {
    const q = new RequestQueue(2);
    const order: number[] = [];
    const r1 = await q.acquire();
    const ac = new AbortController();
    const p2 = q.acquire().then((rel) => (order.push(2), rel));
    const p3 = q.acquire(ac.signal).then((rel) => (order.push(3), rel), () => 'aborted');
    expect(() => q.acquire()).toThrow(QueueFullError);
    ac.abort(new Error('gone'));
    expect(await p3).toBe('aborted');
    const p4 = q.acquire().then((rel) => (order.push(4), rel));
    expect(q.pending).toBe(2);
    r1();
    const r2 = await p2;
    r2();
    const r4 = await p4;
    r4();
    r4(); // a second call is harmless
    expect(order).toEqual([2, 4]);
    expect(q.active).toBe(false);
    expect(q.counts).toEqual({ served: 3, abandoned: 1, refused: 1 });
  });
});

describe('request checks', () => {
  it('applies OpenAI defaults and maps seeds to 32 bits', () => {
    const r = parseRequest('completions', { prompt: 'x', seed: -1 });
    expect(r.sampling).toMatchObject({ temperature: 1, topP: 1, topK: 0, seed: 0xffffffff });
    expect(r.maxTokens).toBeUndefined();
    expect(parseRequest('chat', { messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 7 }).maxTokens).toBe(7);
    expect(parseRequest('completions', { prompt: 'x', top_p: 0 }).sampling.temperature).toBe(0);
  });
  it('names the bad field', () => {
    const err = (body: unknown): ApiError => {
      try {
        parseRequest('completions', body);
      } catch (e) {
        return e as ApiError;
      }
      throw new Error('accepted');
    };
    expect(err({ prompt: 'x', logprobs: 3 }).param).toBe('logprobs');
    expect(err({ prompt: 'x', presence_penalty: 1 }).param).toBe('presence_penalty');
    expect(err({}).param).toBe('prompt');
    expect(err(null).status).toBe(400);
  });
  it('prompts: OpenAI\'s four shapes with one prompt; a batch is refused; anything else, however deep, by shape', () => {
    const prompt = (v: unknown) => parseRequest('completions', { prompt: v }).prompt;
    expect(prompt('hi')).toBe('hi');
    expect(prompt(['hi'])).toBe('hi');
    expect(prompt([1, 2])).toEqual([1, 2]);
    expect(prompt([[1, 2]])).toEqual([1, 2]);
    const err = (v: unknown): ApiError => {
      try {
        parseRequest('completions', { prompt: v });
      } catch (e) {
        return e as ApiError;
      }
      throw new Error('accepted');
    };
    for (const batch of [['a', 'b'], [[1], [2]]]) expect(err(batch)).toMatchObject({ status: 400, param: 'prompt', code: 'unsupported_parameter' });
    expect(err([[1.5]])).toMatchObject({ param: 'prompt', code: 'invalid_value' });
    expect(err([[]])).toMatchObject({ param: 'prompt', code: 'invalid_value' });
    let deep: unknown = [1];
    for (let i = 0; i < 400_000; i++) deep = [deep];
    for (const [v, where] of [
      [[[[1]]], 'prompt\\[0\\]\\[0\\] is an array'],
      [deep, 'prompt\\[0\\]\\[0\\] is an array'],
      [[['a']], 'prompt\\[0\\]\\[0\\] is a string'],
      [['a', [1]], 'prompt\\[0\\] is a string'],
      [[{}], 'prompt\\[0\\] is an object'],
      [{ text: 'x' }, 'prompt is an object'],
    ] as [unknown, string][]) {
      const e = err(v);
      expect(e).toBeInstanceOf(ApiError);
      expect(e).toMatchObject({ status: 400, param: 'prompt', code: 'invalid_type' });
      expect(e.message).toMatch(/a string, an array of token ids \(integers >= 0\), an array of strings or an array of arrays of token ids/);
      expect(e.message).toMatch(new RegExp(where));
    }
  });
  it('other fields: null model is absent, a message needs content, stream_options fields are named in full', () => {
    expect(parseRequest('completions', { prompt: 'x', model: null }).model).toBeUndefined();
    const err = (endpoint: 'completions' | 'chat', body: unknown): ApiError => {
      try {
        parseRequest(endpoint, body);
      } catch (e) {
        return e as ApiError;
      }
      throw new Error('accepted');
    };
    expect(err('chat', { messages: [{ role: 'user' }] })).toMatchObject({ param: 'messages[0].content', code: 'missing_required_parameter', message: 'messages[0].content: required' });
    expect(err('completions', { prompt: 'x', stream_options: { include_usage: 1 } }).param).toBe('stream_options.include_usage');
  });
});
