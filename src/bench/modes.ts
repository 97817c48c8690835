/**
 * The configurations `kloop bench` compares: the GPU executor modes, and `looped:K` for K tokens
 * per dispatch. (The CPU reference is measured as a peer, with --peers.)
 */
import { KloopError } from '../errors.ts';
import { MAX_TOKENS_PER_DISPATCH } from '../engine/layout.ts';
import type { ModeSpec } from '../rdu-emulation/device-model/model.ts';

export const DEFAULT_MODES = 'per-op,per-layer,looped,looped:16';

export interface BenchMode extends ModeSpec {
  label: string;
}

export function parseModes(list: string): BenchMode[] {
  const out: BenchMode[] = [];
  for (const raw of list.split(',')) {
    const s = raw.trim();
    if (s === '') continue;
    const m = /^(per-op|per-layer|looped)(?::(\d+))?$/.exec(s);
    if (!m) throw new KloopError(`--modes: unknown mode "${s}" (known: per-op, per-layer, looped, looped:K)`);
    const mode = m[1] as ModeSpec['mode'];
    const k = m[2] === undefined ? 1 : Number(m[2]);
    if (m[2] !== undefined && mode !== 'looped') throw new KloopError(`--modes: "${s}": only looped takes :K tokens per dispatch`);
    if (!Number.isInteger(k) || k < 1 || k > MAX_TOKENS_PER_DISPATCH) {
      throw new KloopError(`--modes: "${s}": K must be an integer in [1, ${MAX_TOKENS_PER_DISPATCH}]`);
    }
    const label = mode === 'looped' && k > 1 ? `looped:${k}` : mode;
    if (!out.some((o) => o.label === label)) out.push({ mode, k, label });
  }
  if (out.length === 0) throw new KloopError('--modes: no mode given');
  return out;
}
