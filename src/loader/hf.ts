import type { LoadedModel } from './types.ts';
import { fileError } from './util.ts';

/** Load a Hugging Face model folder. */
export async function loadHF(dir: string): Promise<LoadedModel> {
  throw fileError(dir, 'Hugging Face folders are not supported yet');
}
