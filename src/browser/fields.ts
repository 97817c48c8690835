/**
 * The page's number fields, read and checked before anything starts. An empty field means its
 * default (shown as its placeholder); a value that is not a number, not a whole number where one
 * is needed, or out of range gets a message under its field, and the action does not start. A
 * value the model limits (max tokens past the context) is used capped, and the note under the
 * field says so.
 */
import { $, el } from './page.ts';

export interface NumberField {
  id: string;
  /** The value of an empty field; also its placeholder. */
  dflt: number;
  min: number;
  /** Values must be above `min` rather than at least `min`. */
  above?: boolean;
  max?: number;
  integer?: boolean;
}

/** Shows `text` under field `id` as an error (the field is marked invalid) or a note; no text clears it. */
export function fieldMessage(id: string, text?: string, kind: 'error' | 'note' = 'error'): void {
  const input = $<HTMLInputElement>(id);
  let msg = document.getElementById(`${id}-msg`);
  if (!msg) {
    msg = el('small', { id: `${id}-msg`, class: 'field-msg', 'aria-live': 'polite' });
    input.insertAdjacentElement('afterend', msg);
  }
  msg.textContent = text ?? '';
  msg.className = `field-msg ${text ? kind : ''}`.trim();
  msg.hidden = !text;
  if (text && kind === 'error') input.setAttribute('aria-invalid', 'true');
  else input.removeAttribute('aria-invalid');
}

/** Sets a field's placeholder to its default, and its value too when it is empty; editing it clears its message. */
export function initField(f: NumberField, placeholder = String(f.dflt)): void {
  const input = $<HTMLInputElement>(f.id);
  input.placeholder = placeholder;
  if (input.value === '' && !input.validity.badInput) input.value = String(f.dflt);
  input.addEventListener('input', () => fieldMessage(f.id));
}

/** What a field accepts, in words: "a whole number from 1 to 64", "a number above 0, at most 1". */
function accepts(f: NumberField): string {
  const what = f.integer ? 'a whole number' : 'a number';
  if (f.max !== undefined && !f.above) return `${what} from ${f.min} to ${f.max}`;
  const low = f.above ? `above ${f.min}` : `of at least ${f.min}`;
  return f.max === undefined ? `${what} ${low}` : `${what} ${low}, at most ${f.max}`;
}

/** The field's value, or undefined (with its message shown) when it is not valid. */
export function readNumber(f: NumberField): number | undefined {
  const input = $<HTMLInputElement>(f.id);
  const raw = input.value.trim();
  if (raw === '' && !input.validity.badInput) {
    fieldMessage(f.id);
    return f.dflt;
  }
  const v = Number(raw);
  const bad = (why: string): undefined => {
    fieldMessage(f.id, `${why}: enter ${accepts(f)}, or leave it empty for ${f.dflt}`);
    return undefined;
  };
  if (input.validity.badInput || raw === '' || !Number.isFinite(v)) return bad('not a number');
  if (f.integer && !Number.isInteger(v)) return bad(`${raw} is not a whole number`);
  if (f.above ? v <= f.min : v < f.min) return bad(`${raw} is too small`);
  if (f.max !== undefined && v > f.max) return bad(`${raw} is too large`);
  fieldMessage(f.id);
  return v;
}

/** Every field read (all their messages shown), or undefined when one of them is not valid. */
export function readNumbers<K extends string>(fields: Record<K, NumberField>): Record<K, number> | undefined {
  const out = {} as Record<K, number>;
  let ok = true;
  for (const key of Object.keys(fields) as K[]) {
    const v = readNumber(fields[key]);
    if (v === undefined) ok = false;
    else out[key] = v;
  }
  return ok ? out : undefined;
}

/** `value`, or `cap` when it is above it, saying so under field `id` (`why`: what sets the cap). */
export function capped(id: string, value: number, cap: number, why: string): number {
  if (value <= cap) return value;
  fieldMessage(id, `${value} is more than ${why} allows: ${cap} used`, 'note');
  return cap;
}
