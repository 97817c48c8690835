import type { LoadedModel } from './types.ts';
import { fileError } from './util.ts';

/** Write `model` as a Hugging Face folder. */
export async function convertToHF(model: LoadedModel, outDir: string): Promise<void> {
  throw fileError(outDir, `converting ${model.name} is not implemented yet`);
}
