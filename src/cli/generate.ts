/**
 * `kloop generate`: stream a completion of --prompt to stdout (the prompt's own text first, as
 * llama2.c prints it), then a stats line on stderr; or, with --json, one JSON object on stdout.
 */
import { modelMatrices, typeSummary } from '../loader/quant.ts';
import { KloopError } from '../errors.ts';
import { MAX_TOKENS_PER_DISPATCH } from '../engine/layout.ts';
import { type SamplingOptions, GREEDY, validateSampling } from '../engine/sampler.ts';
import { DEFAULTS } from '../engine/session.ts';
import { MAX_SPECULATE } from '../engine/speculate.ts';
import { intFlag, modeFlag, numberFlag, parseFlags, pathFlag } from './args.ts';
import { openModel, sessionFromFlags } from './engine.ts';
import type { Io } from './io.ts';

const DEFAULT_TOKENS_PER_DISPATCH = DEFAULTS.tokensPerDispatch;
const DEFAULT_MAX_TOKENS = DEFAULTS.maxTokens;

export const GENERATE_USAGE = `usage: kloop generate [options]
  --model PATH              llama2.c .bin, .gguf, or Hugging Face folder (default: stories260K
                            from $KLOOP_MODELS/stories260K/, else weights/ (installed: the user
                            cache), else ../shared/models/ beside the checkout, else downloaded;
                            see kloop --help)
  --tokenizer PATH          tokenizer of a llama2.c checkpoint (tok*.bin or tokenizer.json;
                            default: the one tok*.bin beside the model)
  --prompt TEXT             text to continue (default: empty, BOS alone)
  --max-tokens N            tokens to generate, N >= 0 (default ${DEFAULT_MAX_TOKENS}; the context also ends it)
  --temperature T           0 = greedy argmax (the default, reproducible); T > 0 samples
  --top-k K                 sample among the K most likely tokens (default 0 = off)
  --top-p P                 nucleus sampling, 0 < P <= 1 (default 1 = off)
  --seed S                  seed of the sampler, 0..4294967295 (default 0: same text every run)
  --ignore-eos              keep generating past EOS/BOS
  --mode MODE               reference | per-op | per-layer | looped (default looped)
  --tokens-per-dispatch K   looped mode: tokens decoded per dispatch, 1..${MAX_TOKENS_PER_DISPATCH} (default ${DEFAULT_TOKENS_PER_DISPATCH})
  --adapter NAME            WebGPU adapter whose name contains NAME (see kloop devices)
  --context N               KV-cache positions (default: the model's, at most 2048)
  --speculate N             speculative decoding: N draft tokens (prompt lookup) verified in one
                            batched pass, 1..${MAX_SPECULATE} (default 0 = off; 4 with --draft-model);
                            greedy output unchanged
  --draft-model PATH        draft with this smaller model (same vocabulary) instead of prompt lookup
  --json                    print one JSON object instead of the text and the stats line
`;

const FLAGS = {
  model: 'string',
  tokenizer: 'string',
  prompt: 'text',
  'max-tokens': 'string',
  temperature: 'string',
  'top-k': 'string',
  'top-p': 'string',
  seed: 'string',
  'ignore-eos': 'boolean',
  mode: 'string',
  'tokens-per-dispatch': 'string',
  adapter: 'string',
  context: 'string',
  speculate: 'string',
  'draft-model': 'string',
  json: 'boolean',
} as const;

export async function generateCommand(argv: string[], io: Io): Promise<number> {
  const f = parseFlags('generate', argv, FLAGS);
  if (f.help) {
    io.out(GENERATE_USAGE);
    return 0;
  }
  const mode = modeFlag(f.mode, 'looped');
  const maxTokens = f['max-tokens'] === undefined ? DEFAULT_MAX_TOKENS : intFlag('max-tokens', f['max-tokens'], 0);
  const sampling: SamplingOptions = {
    temperature: f.temperature === undefined ? GREEDY.temperature : numberFlag('temperature', f.temperature),
    topK: f['top-k'] === undefined ? GREEDY.topK : intFlag('top-k', f['top-k'], 0),
    topP: f['top-p'] === undefined ? GREEDY.topP : numberFlag('top-p', f['top-p']),
    seed: f.seed === undefined ? GREEDY.seed : intFlag('seed', f.seed, 0, 0xffffffff),
  };
  validateSampling(sampling);
  const unused = (['top-k', 'top-p', 'seed'] as const).filter((n) => f[n] !== undefined);
  if (sampling.temperature === 0 && unused.length > 0) {
    const which = unused.map((n) => `--${n}`).join(', ');
    io.err(`kloop: note: ${which} ignored: --temperature 0${f.temperature === undefined ? ' (the default)' : ''} is greedy decoding\n`);
  }
  if (f['tokens-per-dispatch'] !== undefined && mode !== 'looped') {
    throw new KloopError(`--tokens-per-dispatch: only the looped mode decodes several tokens per dispatch (--mode is ${mode})`);
  }
  const k = mode === 'looped' ? intFlag('tokens-per-dispatch', f['tokens-per-dispatch'] ?? String(DEFAULT_TOKENS_PER_DISPATCH), 1, MAX_TOKENS_PER_DISPATCH) : 1;

  if (mode === 'reference' && f.adapter !== undefined) throw new KloopError('--adapter: the reference mode runs on the CPU and opens no adapter');
  const speculate = f.speculate === undefined ? undefined : intFlag('speculate', f.speculate, 0, MAX_SPECULATE);
  const model = await openModel(f, io);
  const draftModel = f['draft-model'] === undefined ? undefined : await openModel({ model: pathFlag('draft-model', f['draft-model']) }, io);
  const session = sessionFromFlags(model, f, io);
  try {
    // The prompt and the options are checked here; the device opens at the first token.
    const gen = session.generate({ mode, tokensPerDispatch: k, prompt: f.prompt ?? '', maxTokens, sampling, ignoreEos: f['ignore-eos'] ?? false, speculate, draftModel });
    const tok = model.tokenizer;
    if (!f.json) {
      // The prompt's text first, decoded piece by piece like the generated tokens.
      const p = gen.promptTokens;
      let text = '';
      for (let i = 1; i < p.length; i++) text += tok.decodeStep(p[i - 1]!, p[i]!);
      io.out(text);
    }
    for await (const t of gen) if (!f.json) io.out(t.text);
    const r = gen.result();
    const { stats } = r;
    const adapter = session.adapter;
    if (f.json) {
      io.out(
        JSON.stringify({
          model: model.name,
          weightTypes: typeSummary(modelMatrices(model.weights)),
          mode,
          adapter: adapter.info,
          promptTokens: r.promptTokens,
          tokens: r.tokens,
          text: r.text,
          stoppedAt: r.stoppedAt,
          stats,
        }) + '\n',
      );
    } else {
      io.out('\n');
      const kNote = mode === 'looped' ? ` K=${k}` : '';
      const fb = stats.fallbacks > 0 ? `, ${stats.fallbacks} fallbacks to per-op` : '';
      const sp = stats.draftTokens !== undefined ? `, speculation ${stats.acceptedTokens}/${stats.draftTokens} drafts accepted` : '';
      io.err(
        `${model.name} ${mode}${kNote} on ${adapter.name}: ${r.tokens.length} tokens (${r.stoppedAt}), ` +
          `${stats.tokensPerSecond.toFixed(1)} tok/s, ${stats.msPerToken.toFixed(3)} ms/token, ` +
          `${stats.dispatchesPerToken.toFixed(2)} dispatches/token; prefill ${r.promptTokens.length} token${r.promptTokens.length === 1 ? '' : 's'} at ` +
          `${stats.prefillTokensPerSecond.toFixed(1)} tok/s (first token after ${stats.timeToFirstTokenMs.toFixed(1)} ms)${sp}${fb}\n`,
      );
    }
    return 0;
  } finally {
    await session.dispose();
  }
}
