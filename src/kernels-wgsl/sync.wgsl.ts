/**
 * Grid synchronisation that never hangs (used by the fused per-layer and looped kernels).
 *
 * Occupancy discovery (Sorensen et al., OOPSLA 2016): at the start of a dispatch each workgroup
 * takes a ticket with ONE atomicAdd on its slot's poll word. Ticket 0 (the leader) keeps the poll
 * open for a bounded number of polls (until the ticket count has been stable for a while), then
 * closes it with an atomicOr of the CLOSED bit; the ticket count seen at closing is the number of
 * workgroups known to be co-resident, `count`. A workgroup whose ticket comes after the close
 * exits at once. Work is split by ticket over `count` (never by workgroup_id), so any count >= 1
 * is correct.
 *
 * The grid barrier is a monotonic arrival counter on ONE atomic word (barrier k completes when
 * the counter reaches k * count): a single location is totally ordered by coherence, so no
 * reset/generation race exists between relaxed atomics. Every spin is bounded by
 * step.spin_bound iterations and re-reads the abort word; running out raises the abort flag,
 * and every workgroup then leaves the dispatch at its next barrier. The host sees the flag and
 * re-runs the step with per-operation dispatches (no cross-workgroup waits at all).
 *
 * Memory ordering relied on: activations cross workgroups only through atomics (the `act`
 * buffer), written before a workgroup's arrival and read after the barrier completes; KV-cache
 * entries (plain f32) are only read by the workgroup that wrote them (their KV head's owner),
 * ordered by storageBarrier. test/engine/sync.test.ts (two workgroups against the CPU reference)
 * would catch a stale read.
 */
export const SYNC_WGSL = /* wgsl */ `
const CLOSED: u32 = 0x80000000u;
const NONE: u32 = 0xffffffffu;

var<workgroup> wg_ticket: u32;
var<workgroup> wg_count: u32;
var<workgroup> wg_abort: u32;
var<workgroup> wg_epoch: u32;

fn slot_base() -> u32 { return C_SLOTS + disp.slot * SLOT_WORDS; }

fn raise_abort() { atomicStore(&ctl[C_ABORT], 1u); }

// Returns this workgroup's ticket (NONE: not taking part). wg_count holds the participants.
fn discover(lid: u32) -> u32 {
  if (lid == 0u) {
    let b = slot_base();
    let t = atomicAdd(&ctl[b], 1u);
    var ticket = t;
    var count = 0u;
    if ((t & CLOSED) != 0u || t >= step.max_groups) {
      ticket = NONE;
    } else if (t == 0u) {
      // Keep the poll open until every allowed workgroup has a ticket or the poll budget runs
      // out: a workgroup that has not started by then is not co-resident with this one.
      for (var i = 0u; i < step.poll_spins; i++) {
        if ((atomicLoad(&ctl[b]) & ~CLOSED) >= step.max_groups) { break; }
      }
      let old = atomicOr(&ctl[b], CLOSED);
      count = min(old & ~CLOSED, step.max_groups);
      atomicStore(&ctl[b + 1u], count);
    } else {
      for (var i = 0u; ; i++) {
        count = atomicLoad(&ctl[b + 1u]);
        if (count != 0u) { break; }
        if (i >= step.spin_bound || atomicLoad(&ctl[C_ABORT]) != 0u) { raise_abort(); ticket = NONE; break; }
      }
      if (ticket >= count) { ticket = NONE; }
    }
    wg_ticket = ticket;
    wg_count = count;
    wg_epoch = 0u;
    wg_abort = 0u;
  }
  return workgroupUniformLoad(&wg_ticket);
}

// Grid barrier over the discovered workgroups. Returns false when the dispatch is aborting.
fn grid_sync(lid: u32) -> bool {
  storageBarrier();
  workgroupBarrier();
  if (lid == 0u) {
    let b = slot_base() + 2u;
    wg_epoch = wg_epoch + 1u;
    let goal = wg_epoch * wg_count;
    let arrived = atomicAdd(&ctl[b], 1u) + 1u;
    if (arrived < goal) {
      var ok = false;
      for (var i = 0u; i < step.spin_bound; i++) {
        if (atomicLoad(&ctl[b]) >= goal) { ok = true; break; }
        if (atomicLoad(&ctl[C_ABORT]) != 0u) { break; }
      }
      if (!ok) { wg_abort = 1u; raise_abort(); }
    }
  }
  return workgroupUniformLoad(&wg_abort) == 0u;
}
`;
