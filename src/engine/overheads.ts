/**
 * What a decode step costs besides its work, measured through an executor's own kernels and
 * submit path: the step's dispatches run with step.n_tokens = 0, so each kernel returns at once
 * (fused kernels with several workgroups run their occupancy discovery first). On a CPU adapter
 * launching a large kernel costs far more than launching a tiny one (llvmpipe, stories260K: about
 * 0.1 ms for the looped kernel against 15-30 us for an empty one), which is what the device
 * model's per-mode dispatch cost needs.
 */
import { median } from './counts.ts';

export interface StepOverheads {
  /**
   * Seconds one step's dispatches add to a submit when launched with no work: a submit of one
   * empty step less an empty submit, each the median of its repeats. 0 when that difference is
   * within the timing noise (a launch too cheap to resolve here).
   */
  launch: number;
  /** Seconds of a submit with no dispatch, through the executor's own path and readback. */
  roundTrip: number;
}

/**
 * `submit(copies)` runs `copies` empty steps (0 = none) in one submit and resolves when read
 * back; `now` in ms. Timed as decoding submits: `repeats` empty submits back to back, then
 * `repeats` submits of one empty step back to back, and the median of each is its cost (what a
 * typical step pays; the bench's figures are medians of many steps' sums).
 * Until 2026-11-30 the figures were the minimums of alternating empty and 16-step submits: the
 * luckiest submit (lavapipe, a looped step's empty submit: 0.14 ms at best, 0.24 ms at the
 * median; the model predicted looped 30-40% too fast), and 16 steps in one submit are not what a
 * decode pays per step (lavapipe, per-op's 704 empty dispatches in one submit: 3.5 ms a step,
 * more than a whole real per-op token).
 */
export async function measureOverheads(
  submit: (copies: number) => Promise<unknown>, repeats = 9, now: () => number = () => performance.now(),
): Promise<StepOverheads> {
  const timed = async (copies: number): Promise<number> => {
    const t0 = now();
    await submit(copies);
    return (now() - t0) / 1e3;
  };
  const series = async (copies: number): Promise<number> => {
    await timed(copies); // warm-up
    const xs: number[] = [];
    for (let i = 0; i < repeats; i++) xs.push(await timed(copies));
    return median(xs);
  };
  const roundTrip = await series(0);
  const step = await series(1);
  return { launch: Math.max(0, step - roundTrip), roundTrip };
}

/**
 * The overheads of several rounds of measureOverheads: the median step (launch + round trip,
 * what a decoding step pays besides its work) and the median round trip, the launch their
 * difference. The medians of launch and round trip taken apart do not sum to a typical step:
 * their errors run opposite ways (a slow empty submit lowers the launch it is subtracted from;
 * lavapipe, looped: 0.035 + 0.205 and 0.181 + 0.106 ms in rounds of one process), so their sum
 * moved by a third between runs of one build. Every round's step is at least its round trip, so
 * the median step is at least the median round trip.
 */
export function medianOverheads(rounds: readonly StepOverheads[]): StepOverheads {
  if (rounds.length === 0) throw new Error('medianOverheads: no rounds');
  const roundTrip = median(rounds.map((o) => o.roundTrip));
  const step = median(rounds.map((o) => o.launch + o.roundTrip));
  return { launch: Math.max(0, step - roundTrip), roundTrip };
}
