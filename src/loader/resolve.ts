import { KloopError } from '../errors.ts';

/** Path of the default model (stories260K.bin). */
export async function resolveDefaultModel(): Promise<string> {
  throw new KloopError('no default model yet: pass --model');
}
