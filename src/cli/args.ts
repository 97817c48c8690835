/**
 * Flag parsing for every `kloop` command: node:util parseArgs in strict mode, with its errors
 * turned into one-line KloopErrors, and value validators that name the flag and the value.
 */
import { parseArgs } from 'node:util';
import { KloopError } from '../errors.ts';
import { MODES, type Mode } from '../engine/executor.ts';

/**
 * 'string': a value that must not be empty (a path, a name, a number); 'text': a value that may
 * be empty (a prompt); 'boolean': a switch.
 */
export type FlagTypes = Record<string, 'string' | 'text' | 'boolean'>;

/** Values of the flags declared in `T`: strings for value flags, booleans for switches. */
export type Flags<T extends FlagTypes> = {
  [K in keyof T]?: T[K] extends 'boolean' ? boolean : string;
} & { help?: boolean };

/**
 * Parses `argv` against `flags` (every command also takes --help / -h). Unknown flags,
 * missing values, empty values (but for 'text' flags), positional arguments and repeated flags
 * are one-line errors.
 */
export function parseFlags<T extends FlagTypes>(command: string, argv: string[], flags: T): Flags<T> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, type] of Object.entries(flags)) options[name] = { type: type === 'text' ? 'string' : type };
  const seeHelp = `(see kloop ${command} --help)`;
  // A negative number after a value flag is its value (`--context -5`), so that the flag's own
  // range check names it, rather than parseArgs calling it an ambiguous option.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const valueFlag = a.startsWith('--') && !a.includes('=') && options[a.slice(2)]?.type === 'string';
    if (valueFlag && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else args.push(a);
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false, tokens: true });
  } catch (e) {
    throw parseError(e as Error & { code?: string }, seeHelp);
  }
  const seen = new Set<string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name)) throw new KloopError(`${t.rawName}: given more than once`);
    seen.add(t.name);
    if (flags[t.name] === 'string' && t.value !== undefined && t.value.trim() === '') throw new KloopError(`${t.rawName}: empty value`);
  }
  return parsed.values as Flags<T>;
}

function parseError(e: Error & { code?: string }, seeHelp: string): KloopError {
  const msg = String(e.message);
  const flag = /'(-{1,2}[^' ]*)/.exec(msg)?.[1] ?? '';
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new KloopError(`${flag || msg.split('.')[0]}: unknown flag ${seeHelp}`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new KloopError(`${/'([^']*)'/.exec(msg)?.[1] ?? 'argument'}: unexpected argument ${seeHelp}`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(msg)) return new KloopError(`${flag}: takes no value`);
      if (/ambiguous/.test(msg)) return new KloopError(`${flag}: missing value (write ${flag}=VALUE for a value starting with '-')`);
      return new KloopError(`${flag}: missing value`);
    default:
      return new KloopError(msg.split('\n')[0]!);
  }
}

/** A non-negative integer flag at least `min`; `flag` as written (with its dashes). */
export function atLeastFlag(flag: string, v: string, min: number): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
    throw new KloopError(`${flag}: expected an integer >= ${min}, got "${v}"`);
  }
  return Number(v);
}

/** A flag that names a file or folder: `undefined` stays so, an empty value is an error. */
export function pathFlag(flag: string, value: string | undefined): string | undefined {
  if (value !== undefined && value.trim() === '') throw new KloopError(`--${flag}: empty path`);
  return value;
}

/** An integer flag in [min, max]. */
export function intFlag(flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = value.trim();
  const n = Number(v);
  if (!/^[+-]?\d+$/.test(v) || !Number.isSafeInteger(n)) throw new KloopError(`--${flag}: expected an integer, got "${value}"`);
  if (n < min || n > max) {
    throw new KloopError(`--${flag}: must be ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`} (got ${n})`);
  }
  return n;
}

/** A finite decimal number flag (range checks are the caller's). */
export function numberFlag(flag: string, value: string): number {
  const v = value.trim();
  const n = Number(v);
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(v) || !Number.isFinite(n)) {
    throw new KloopError(`--${flag}: expected a number, got "${value}"`);
  }
  return n;
}

/** A comma-separated list of integers in [min, max]. */
export function intListFlag(flag: string, value: string, min: number, max: number): number[] {
  const parts = value.split(',');
  if (parts.some((p) => p.trim() === '')) throw new KloopError(`--${flag}: expected comma-separated integers, got "${value}"`);
  return parts.map((p) => intFlag(flag, p, min, max));
}

/** --mode: one of MODES. */
export function modeFlag(value: string | undefined, fallback: Mode): Mode {
  if (value === undefined) return fallback;
  if (!(MODES as readonly string[]).includes(value)) throw new KloopError(`--mode: unknown mode "${value}" (one of ${MODES.join(', ')})`);
  return value as Mode;
}
