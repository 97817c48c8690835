/**
 * One decode step, described once as data.
 *
 * A step is a list of CALLS (kernel invocations): a prologue (embedding), one call per decoder
 * layer, and an epilogue (final norm + classifier, then sampling). Each call is a list of STAGES.
 * Every executor runs this same schedule:
 *   - reference: the CPU oracle (src/engine/reference.ts) follows the same stage order;
 *   - per-op:    one dispatch per stage;
 *   - per-layer: one dispatch per call (the stages fused, grid barriers between them);
 *   - looped:    the looping pass (loopLayers) turns the run of layer calls into ONE looped call,
 *                and the whole step becomes one dispatch (several tokens with --tokens-per-dispatch).
 *
 * Each stage declares how its work is split across workgroups (its partition) and which
 * activation buffers it reads and writes; `planBarriers` derives from that alone where a fused
 * kernel needs a grid barrier.
 */
import type { ModelConfig } from '../loader/types.ts';

export { type ActBuffer, type Partition, type Read, type StageId, type StageSpec, STAGES } from './stages.ts';
import { type ActBuffer, type Partition, type StageId, type StageSpec, STAGES } from './stages.ts';

/** The stages of one decoder layer, in order. */
export const LAYER_STAGES: readonly StageId[] = [
  'attn_norm', 'qkv', 'rope_append', 'attention', 'wo_residual', 'ffn_norm', 'gate_up', 'down_residual',
];

/** A layer call's kernel signature: layers with equal signatures can share one looped kernel. */
export function layerSignature(c: ModelConfig): string {
  return JSON.stringify({
    dim: c.dim, hidden: c.hiddenDim, heads: c.nHeads, kvHeads: c.nKvHeads, headDim: c.headDim,
    bias: c.attentionBias, eps: c.normEps,
  });
}

export type Call =
  | { kind: 'prologue' | 'epilogue'; name: string; stages: StageId[] }
  | { kind: 'layer'; name: string; stages: StageId[]; layer: number; signature: string }
  /** The looped call: `stages` run once per layer in `layers`, addressing w[n] and kv[n]. */
  | { kind: 'loop'; name: string; stages: StageId[]; layers: number[]; signature: string };

export interface Schedule {
  calls: Call[];
}

/** The per-layer schedule of one decode step (what SN40L runs without kernel looping). */
export function buildSchedule(c: ModelConfig, layerSignatures?: string[]): Schedule {
  const calls: Call[] = [{ kind: 'prologue', name: 'embedding', stages: ['embed'] }];
  for (let n = 0; n < c.nLayers; n++) {
    calls.push({
      kind: 'layer', name: `decoder[${n}]`, stages: [...LAYER_STAGES], layer: n,
      signature: layerSignatures?.[n] ?? layerSignature(c),
    });
  }
  calls.push({ kind: 'epilogue', name: 'classifier', stages: ['final_norm', 'classifier'] });
  calls.push({ kind: 'epilogue', name: 'sampling', stages: ['sample'] });
  return { calls };
}

export interface LoopReport {
  schedule: Schedule;
  /** What the pass did, one line per decision. */
  notes: string[];
}

/**
 * The kernel-looping transformation. Finds each maximal run of consecutive layer calls with the
 * same kernel signature whose activation output feeds the next call (a layer writes x, the next
 * reads x), and replaces the run with ONE loop call over the stacked layers w[n], kv[n]. A run
 * whose layers differ is split into identical runs; a run of one call is left alone.
 */
export function loopLayers(schedule: Schedule): LoopReport {
  const out: Call[] = [];
  const notes: string[] = [];
  const calls = schedule.calls;
  const chains = (a: Call, b: Call): boolean => {
    const writesX = a.stages.some((s) => STAGES[s].writes.includes('x'));
    const readsX = b.stages.some((s) => STAGES[s].reads.some((r) => r.buf === 'x'));
    return writesX && readsX;
  };
  for (let i = 0; i < calls.length; ) {
    const first = calls[i];
    if (first.kind !== 'layer') {
      out.push(first);
      i++;
      continue;
    }
    let j = i + 1;
    while (j < calls.length) {
      const next = calls[j];
      const prev = calls[j - 1];
      if (next.kind !== 'layer' || next.signature !== first.signature || !chains(prev, next)) break;
      if (next.stages.join() !== first.stages.join()) break;
      j++;
    }
    const run = calls.slice(i, j) as Extract<Call, { kind: 'layer' }>[];
    if (run.length === 1) {
      out.push(first);
      notes.push(`${first.name}: left as a per-layer call (no identical neighbour)`);
    } else {
      const layers = run.map((r) => r.layer);
      out.push({
        kind: 'loop', name: `decoder[${layers[0]}..${layers[layers.length - 1]}]`,
        stages: [...first.stages], layers, signature: first.signature,
      });
      notes.push(
        `looped ${run.length} calls ${run[0].name}..${run[run.length - 1].name} into one call; ` +
          `weights stacked as w[n], KV as kv[n], activation x carried from layer to layer in place (the act buffer)`,
      );
    }
    if (j < calls.length && calls[j].kind === 'layer') {
      notes.push(`split at ${calls[j].name}: its kernel differs from ${calls[j - 1].name}`);
    }
    i = j;
  }
  return { schedule: { calls: out }, notes };
}

/** Dispatches one executor mode issues per decode step. */
export function dispatchesPerStep(schedule: Schedule, mode: 'per-op' | 'per-layer' | 'looped'): number {
  if (mode === 'per-op') {
    return schedule.calls.reduce((n, c) => n + c.stages.length * (c.kind === 'loop' ? c.layers.length : 1), 0);
  }
  if (mode === 'per-layer') return schedule.calls.length;
  return 1;
}

/**
 * Where a fused kernel needs a grid barrier. Walks the stage sequence tracking, since the last
 * barrier, which buffers were written and read by which partitions. A barrier is needed before a
 * stage when it would read data another workgroup may still be writing (read-after-write), or
 * overwrite data another workgroup may still be reading (write-after-read). Reads of replicated
 * results, and 'own' reads of data written under the same partition, stay inside one workgroup.
 * Loops are planned by unrolling them (see planLooped in compose.ts).
 *
 * Returns, per position, whether a barrier goes BEFORE that stage.
 */
export function planBarriers(seq: readonly StageId[]): { before: boolean[] } {
  let state = emptyHazards();
  const before: boolean[] = [];
  for (const id of seq) {
    const st = STAGES[id];
    const need = conflicts(state, st);
    before.push(need);
    if (need) state = emptyHazards();
    for (const r of st.reads) addTo(state.reads, r.buf, r.access === 'own' ? st.partition : 'any');
    for (const w of st.writes) addTo(state.writes, w, st.partition);
  }
  return { before };
}

/** Buffers touched since the last barrier: buffer -> partitions that wrote / read it ('any' = all of it). */
interface Hazards {
  writes: Map<ActBuffer, Set<Partition>>;
  reads: Map<ActBuffer, Set<Partition | 'any'>>;
}

function emptyHazards(): Hazards {
  return { writes: new Map(), reads: new Map() };
}

function addTo<T>(m: Map<ActBuffer, Set<T>>, k: ActBuffer, v: T): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function conflicts(state: Hazards, st: StageSpec): boolean {
  // Read after write.
  for (const r of st.reads) {
    const writers = state.writes.get(r.buf);
    if (!writers) continue;
    for (const p of writers) {
      if (p === 'replicated') continue; // every workgroup holds its own full copy
      if (r.access === 'own' && p === st.partition) continue; // same owner wrote it
      return true;
    }
  }
  // Write after read / write after write by another partition.
  for (const w of st.writes) {
    const readers = state.reads.get(w);
    if (readers) {
      for (const p of readers) {
        if (p === 'any') {
          // Someone read all of it since the last barrier. Only a replicated writer that
          // rewrites identical values... is still a hazard across iterations: be strict.
          return true;
        }
        if (p !== st.partition) return true;
      }
    }
    const writers = state.writes.get(w);
    if (writers) for (const p of writers) if (p !== st.partition || p === 'rows') return true;
  }
  return false;
}
