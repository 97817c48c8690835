import type { LoadedModel } from './types.ts';
import { fileError } from './util.ts';

/** Load a GGUF v3 model. */
export async function loadGguf(path: string): Promise<LoadedModel> {
  throw fileError(path, 'GGUF loading is not implemented yet');
}
