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
  /** Seconds of one step's dispatches, launched with no work (from 1 and 16 steps per submit). */
  launch: number;
  /** Seconds of one submit with its readback, the launch excluded. */
  roundTrip: number;
}

/** `submit(copies)` runs `copies` empty steps in one submit and resolves when read back; `now` in ms. */
export async function measureOverheads(
  submit: (copies: number) => Promise<unknown>, repeats = 9, now: () => number = () => performance.now(),
): Promise<StepOverheads> {
  const timed = async (copies: number): Promise<number> => {
    const t0 = now();
    await submit(copies);
    return (now() - t0) / 1e3;
  };
  const t1: number[] = [];
  const t16: number[] = [];
  await timed(1); // warm-up
  for (let i = 0; i < repeats; i++) {
    t1.push(await timed(1));
    t16.push(await timed(16));
  }
  const launch = Math.max(0, (median(t16) - median(t1)) / 15);
  return { launch, roundTrip: Math.max(0, median(t1) - launch) };
}
