/** One-line KloopErrors about a file (no Node imports, usable in the browser). */
import { KloopError } from '../errors.ts';

/** A one-line error about `file`. */
export function fileError(file: string, problem: string): KloopError {
  return new KloopError(`${file}: ${problem.replace(/[\r\n]+/g, ' ')}`);
}

/** Throw a one-line KloopError about `file` when `cond` is false. */
export function need(cond: unknown, file: string, problem: string): asserts cond {
  if (!cond) throw fileError(file, problem);
}
