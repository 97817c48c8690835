/**
 * Composes the stage bodies of src/kernels-wgsl into the three kernel shapes:
 *   per-op:    one entry point per stage (one dispatch per operation);
 *   per-layer: one entry point per call of the schedule (stages fused, grid barriers between);
 *   looped:    one entry point for the whole step: a token loop around the prologue, the looped
 *              call (outer loop over layers n addressing w[n], kv[n]) and the epilogue.
 * Each stage's WGSL is written once; only the glue differs.
 */
import { type Handoff, commonWgsl } from '../kernels-wgsl/common.wgsl.ts';
import { TYPE_CODE, dequantHelpers, elemWgsl, unitDotWgsl, unitElems } from '../kernels-wgsl/dequant.wgsl.ts';
import { matvecItems, matvecLanes, unitDotName } from '../kernels-wgsl/matvec.wgsl.ts';
import { withoutBarriers } from '../kernels-wgsl/lockstep.wgsl.ts';
import { SUBGROUP_ENABLE, SUBGROUP_UNIT_TYPES, subgroupSharing, subgroupUnitDotWgsl } from '../kernels-wgsl/subgroup.wgsl.ts';
import { SYNC_WGSL } from '../kernels-wgsl/sync.wgsl.ts';
import type { Layout } from './layout.ts';
import { type Call, type StageId, STAGES, planBarriers } from './schedule.ts';
import { WBUF, stageContext } from './stages.ts';

function header(layout: Layout): string {
  const lines = Object.entries(layout.consts).map(([k, v]) => `const ${k}: u32 = ${v}u;`);
  lines.push(`const EPS: f32 = ${layout.config.normEps.toExponential()};`);
  return lines.join('\n');
}


/** Per-layer type tables (only for matrices whose encoding differs between layers). */
function typeTables(layout: Layout): string {
  return Object.entries(layout.slots)
    .filter(([, s]) => new Set(s.types).size > 1)
    .map(([name, s]) => `var<private> TY_${name.toUpperCase()}: array<u32, ${s.types.length}> = array<u32, ${s.types.length}>(${s.types.map((t) => `${TYPE_CODE[t]}u`).join(', ')});`)
    .join('\n');
}

/** The decoders every stage of this layout may call: one unit dot per (encoding, width, buffer), one value read for the embedding. */
function decoders(layout: Layout): string {
  const out = new Map<string, string>();
  const sg = layout.kernel.subgroups ?? 0;
  for (const s of Object.values(layout.slots)) {
    for (const t of new Set(s.types)) {
      if (t === 'f32') continue;
      const name = unitDotName(t, s.cols, WBUF[s.buf]);
      if (!out.has(name)) out.set(name, unitDotWgsl(t, WBUF[s.buf], unitElems(t, s.cols)).replace(`fn ud_${t}_`, `fn ${name.replace(/_w_.*$/, '')}_`));
      if (subgroupSharing({ sg, lanes: layout.kernel.lanes }) && SUBGROUP_UNIT_TYPES.includes(t) && !out.has(`s${name}`)) {
        out.set(`s${name}`, subgroupUnitDotWgsl(t, WBUF[s.buf], sg).replace(`fn uds_${t}_`, `fn s${name.replace(/_w_.*$/, '')}_`));
      }
    }
  }
  const emb = layout.slots.emb.types[0];
  return [dequantHelpers(layout.kernel.style ?? 'gpu'), typeTables(layout), ...out.values(), elemWgsl(emb, 'w_emb')].join('\n');
}

/**
 * The WGSL function of each stage, from its STAGES declaration (stages.ts), instantiated for this
 * layout. With plain activations the CPU
 * style's f32 matvecs read their input straight from `act`; through atomics they stage it once.
 */
export function stageFunctions(layout: Layout, handoff: Handoff = 'plain'): Record<StageId, string> {
  const x = stageContext(layout, handoff);
  return Object.fromEntries(Object.values(STAGES).map((s) => [s.id, s.wgsl(x)])) as Record<StageId, string>;
}

/**
 * The batched form of each stage (layout.batch set, batch-layout.ts): the step.n_tokens tokens
 * of a chunk per weight read, activations in the T-row B_* regions. Same work split as the
 * decode forms, so the same barrier plan and program shapes hold. No sampling stage: the
 * batched forward returns logits.
 */
export function batchedStageFunctions(layout: Layout): Record<StageId, string> {
  const x = stageContext(layout, 'plain');
  return Object.fromEntries(Object.values(STAGES).map((s) => [s.id, s.batched(x)])) as Record<StageId, string>;
}

/** Work items of a stage (from its STAGES declaration): how many workgroups a per-op dispatch of it uses. */
export function stageItems(id: StageId, layout: Layout): number {
  const k = layout.consts;
  const { wg, lanes } = layout.kernel;
  const st = STAGES[id];
  if (st.partition === 'replicated') return 1;
  if (st.partition === 'kvHeads') return k.NKV;
  const rows = st.rows!(layout.config);
  return matvecItems(rows, matvecLanes({ wg, lanes }, rows, st.cols!(layout.config)), wg);
}

/**
 * A whole WGSL module: the layout's constants, the shared declarations, grid sync if asked, the
 * given stages' functions and `body` (entry points). Every kernel is composed here, the
 * device-model microbenchmarks' included.
 */
export function composeModule(layout: Layout, stages: Iterable<StageId>, body: string, sync: boolean, handoff: Handoff): string {
  const fns = layout.batch ? batchedStageFunctions(layout) : stageFunctions(layout, handoff);
  const code = [layout.kernel.subgroups ? SUBGROUP_ENABLE : '', header(layout), commonWgsl(layout.kernel.style ?? 'gpu', handoff, layout.kernel.vec4 ?? false, layout.kernel.texture === true, layout.kernel.subgroups ?? 0), decoders(layout), sync ? SYNC_WGSL : '', ...[...new Set(stages)].map((s) => fns[s]), body].join('\n');
  // Lockstep adapters: no barrier within a workgroup; kernels that sync workgroups keep theirs.
  return layout.kernel.lockstep && !sync ? withoutBarriers(code) : code;
}

const ENTRY_ARGS =
  '@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32';

const SYNC_OR_LEAVE = 'if (!grid_sync(lid)) { return; }';
// Orders this workgroup's storage writes before the next stage's reads; each stage protects its
// own workgroup-memory scratch with the barriers it needs.
const LOCAL_ORDER = 'storageBarrier();';

// Entry prologues: each sets t (this workgroup's index) and n (the workgroups taking part) and
// returns at once on a step of no tokens.
const DISCOVER = `
  let t = discover(lid);
  if (t == NONE || step.n_tokens == 0u) { return; }
  let n = workgroupUniformLoad(&wg_count);`;
/** A single-workgroup fused kernel (plain hand-off): workgroup 0 does everything, others leave. */
const SINGLE = `
  if (wid.x != 0u || step.n_tokens == 0u) { return; }
  let t = 0u;
  let n = 1u;`;
const NO_DISCOVER = `
  if (step.n_tokens == 0u) { return; }
  let t = wid.x;
  let n = nwg.x;`;

/**
 * per-op: one entry point `op_<stage>` per stage; the dispatch's grid is the work split. Plain
 * activations: consecutive dispatches are ordered by the dispatch boundary. Its prologue is the
 * undiscovered fused form's (NO_DISCOVER): like every kernel shape, a step of no tokens
 * (step.n_tokens = 0: the executor's launch measurement, overheads.ts) returns at once.
 */
export function perOpModule(layout: Layout, stages: StageId[]): string {
  const entries = [...new Set(stages)].map(
    (s) => `@compute @workgroup_size(WG) fn op_${s}(${ENTRY_ARGS}) {${NO_DISCOVER}
  s_${s}(t, n, lid, disp.layer, 0u);
}`,
  );
  return composeModule(layout, stages, entries.join('\n'), false, 'plain');
}

/** Straight-line code of a stage sequence with the barriers `before` asks for. */
function sequence(stages: readonly StageId[], before: readonly (boolean | string)[], layer: string, j: string, single = false): string {
  return stages
    .map((s, i) => {
      const b = before[i];
      // One workgroup: a grid barrier is the workgroup barrier every stage already ends with.
      const sync = single ? '' : b === true ? SYNC_OR_LEAVE : typeof b === 'string' && b ? `if (${b}) { ${SYNC_OR_LEAVE} }` : '';
      return `  ${sync}\n  s_${s}(t, n, lid, ${layer}, ${j});\n  ${LOCAL_ORDER}`;
    })
    .join('\n');
}

/** per-layer: one entry point per call name, `call_<i>`; each is a whole call fused. */
export function perLayerModule(layout: Layout, calls: Call[], handoff: Handoff): { code: string; entries: string[]; barriers: number[] } {
  const bodies: string[] = [];
  const entries: string[] = [];
  const barriers: number[] = [];
  const single = handoff === 'plain';
  const seen = new Map<string, number>();
  for (const call of calls) {
    const key = call.stages.join(',');
    if (seen.has(key)) {
      entries.push(entries[seen.get(key)!]);
      barriers.push(barriers[seen.get(key)!]);
      continue;
    }
    const name = `call_${bodies.length}`;
    const { before } = planBarriers(call.stages);
    const count = before.filter(Boolean).length;
    const layer = call.kind === 'layer' ? 'disp.layer' : '0u';
    bodies.push(
      `@compute @workgroup_size(WG) fn ${name}(${ENTRY_ARGS}) {${single ? SINGLE : count > 0 ? DISCOVER : NO_DISCOVER}\n` +
        `${sequence(call.stages, before, layer, '0u', single)}\n}`,
    );
    seen.set(key, entries.length);
    entries.push(name);
    barriers.push(count);
  }
  const stages = calls.flatMap((c) => c.stages);
  return { code: composeModule(layout, stages, bodies.join('\n'), !single, handoff), entries, barriers: single ? barriers.map(() => 0) : barriers };
}

/**
 * Barrier plan of the looped step: for each stage slot of the generated code, whether a barrier
 * goes before it on the first pass of its loop and on later passes. Derived from the schedule by
 * unrolling two tokens of three layers and OR-ing the decisions of each slot's occurrences.
 */
export function planLooped(prologue: StageId[], body: StageId[], epilogue: StageId[]): {
  prologue: { first: boolean; later: boolean }[];
  body: { first: boolean; later: boolean }[];
  epilogue: boolean[];
  perToken: (layers: number) => number;
} {
  const layers = 3;
  const seq: { slot: string; idx: number; firstPass: boolean; firstToken: boolean }[] = [];
  for (let tok = 0; tok < 2; tok++) {
    prologue.forEach((_, i) => seq.push({ slot: 'p', idx: i, firstPass: tok === 0, firstToken: tok === 0 }));
    for (let l = 0; l < layers; l++) body.forEach((_, i) => seq.push({ slot: 'b', idx: i, firstPass: l === 0, firstToken: tok === 0 }));
    epilogue.forEach((_, i) => seq.push({ slot: 'e', idx: i, firstPass: false, firstToken: tok === 0 }));
  }
  const ids = seq.map((s) => (s.slot === 'p' ? prologue : s.slot === 'b' ? body : epilogue)[s.idx]);
  const { before } = planBarriers(ids);
  const p = prologue.map(() => ({ first: false, later: false }));
  const b = body.map(() => ({ first: false, later: false }));
  const e = epilogue.map(() => false);
  seq.forEach((s, i) => {
    if (!before[i]) return;
    if (s.slot === 'p') p[s.idx][s.firstToken ? 'first' : 'later'] = true;
    else if (s.slot === 'b') b[s.idx][s.firstPass ? 'first' : 'later'] = true;
    else e[s.idx] = true;
  });
  return {
    prologue: p, body: b, epilogue: e,
    perToken: (L) =>
      p.reduce((a, x) => a + (x.later ? 1 : 0), 0) +
      b.reduce((a, x) => a + (x.first ? 1 : 0) + (x.later ? L - 1 : 0), 0) +
      e.filter(Boolean).length,
  };
}

const cond = (x: { first: boolean; later: boolean }, v: string): boolean | string =>
  x.first && x.later ? true : x.later ? `${v} > 0u` : x.first ? `${v} == 0u` : false;

/**
 * looped: ONE entry point `step_looped`: for each of step.n_tokens tokens, the prologue, the
 * looped call (for n in layers: the layer's stages on w[n], kv[n]) and the epilogue; the token
 * sampled on the device feeds the next iteration's embedding.
 */
export function loopedModule(
  layout: Layout, prologue: StageId[], loop: Extract<Call, { kind: 'loop' }>, epilogue: StageId[], handoff: Handoff,
): {
  code: string;
  barriersPerToken: number;
} {
  const plan = planLooped(prologue, loop.stages, epilogue);
  const first = loop.layers[0];
  const last = loop.layers[loop.layers.length - 1];
  if (loop.layers.some((l, i) => l !== first + i)) throw new Error('looped call over non-contiguous layers');
  const single = handoff === 'plain';
  const body = `@compute @workgroup_size(WG) fn step_looped(${ENTRY_ARGS}) {${single ? SINGLE : DISCOVER}
  for (var j = 0u; j < ${layout.batch ? '1u' : 'step.n_tokens'}; j++) {
${sequence(prologue, plan.prologue.map((x) => cond(x, 'j')), '0u', 'j', single)}
    for (var layer = ${first}u; layer <= ${last}u; layer++) {
${sequence(loop.stages, plan.body.map((x) => cond(x, `(layer - ${first}u)`)), 'layer', 'j', single)}
    }
${sequence(epilogue, plan.epilogue, '0u', 'j', single)}
  }
}`;
  return {
    code: composeModule(layout, [...prologue, ...loop.stages, ...epilogue], body, !single, handoff),
    barriersPerToken: single ? 0 : plan.perToken(loop.layers.length),
  };
}
