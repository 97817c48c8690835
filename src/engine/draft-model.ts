/**
 * A smaller draft model for speculative decoding (`--draft-model`): it must share the main
 * model's vocabulary, and it runs on its own executor (and KV cache) on the same device.
 */
import { KloopError } from '../errors.ts';
import type { LoadedModel } from '../loader/types.ts';
import type { Executor } from './interface.ts';
import { type Drafter, modelDrafter } from './speculate.ts';

/** Throws unless `draft` has the vocabulary of `model`: the same size and the same text for every id. */
export function checkSameVocabulary(model: LoadedModel, draft: LoadedModel): void {
  const a = model.config.vocabSize;
  const b = draft.config.vocabSize;
  if (a !== b) throw new KloopError(`draft model ${draft.name}: a vocabulary of ${b} tokens, ${model.name} has ${a}`);
  const ta = model.tokenizer;
  const tb = draft.tokenizer;
  if (ta.vocabSize === 0 || tb.vocabSize === 0) return;
  for (let id = 0; id < a; id++) {
    if (ta.decode([id]) !== tb.decode([id])) {
      throw new KloopError(`draft model ${draft.name}: token ${id} is ${JSON.stringify(tb.decode([id]))}, in ${model.name} ${JSON.stringify(ta.decode([id]))} (another vocabulary)`);
    }
  }
}

/** A drafter on a draft model whose executor is built on first use by `open`. */
export function lazyModelDrafter(open: () => Promise<Executor>, context: number): Drafter {
  let inner: Drafter | undefined;
  return async (ctx, count) => (inner ??= modelDrafter(await open(), context))(ctx, count);
}
