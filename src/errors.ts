/**
 * An error the user caused or can fix (bad file, bad flag, missing adapter...).
 * The CLI prints its message on one line and exits with `exitCode`, without a stack trace.
 */
export class KloopError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'KloopError';
    this.exitCode = exitCode;
  }
}

/** Throw a KloopError naming `what` (a file, a flag) when `cond` is false. */
export function check(cond: unknown, what: string, problem: string): asserts cond {
  if (!cond) throw new KloopError(`${what}: ${problem}`);
}

/**
 * A bad value of a named engine option (`tokensPerDispatch`, `context`, `groups`...). The message
 * starts with the option's name; a front end maps it to its own spelling (the CLI to its flag).
 */
export class OptionError extends KloopError {
  readonly option: string;
  constructor(option: string, problem: string) {
    super(`${option}: ${problem}`);
    this.name = 'OptionError';
    this.option = option;
  }
}
