/**
 * What a decode step costs besides its work, measured through an executor's own kernels and
 * submit path: the step's dispatches run with step.n_tokens = 0, so each kernel returns at once
 * (fused kernels with several workgroups run their occupancy discovery first). On a CPU adapter
 * launching a large kernel costs far more than launching a tiny one (llvmpipe, stories260K: about
 * 0.1 ms for the looped kernel against 15-30 us for an empty one), which is what the device
 * model's per-mode dispatch cost needs.
 */

export interface StepOverheads {
  /**
   * Seconds of one step's dispatches, launched with no work: (16 steps in a submit - none) / 16.
   * 0 when that difference is within the timing noise (a launch too cheap to resolve here).
   */
  launch: number;
  /** Seconds of a submit with no dispatch, through the executor's own path and readback. */
  roundTrip: number;
}

/**
 * `submit(copies)` runs `copies` empty steps (0 = none) in one submit and resolves when read
 * back; `now` in ms. Fixed work timed under interference: the minimum of `repeats` is its cost.
 */
export async function measureOverheads(
  submit: (copies: number) => Promise<unknown>, repeats = 9, now: () => number = () => performance.now(),
): Promise<StepOverheads> {
  const timed = async (copies: number): Promise<number> => {
    const t0 = now();
    await submit(copies);
    return (now() - t0) / 1e3;
  };
  const none: number[] = [];
  const sixteen: number[] = [];
  await timed(1); // warm-up
  for (let i = 0; i < repeats; i++) {
    none.push(await timed(0));
    sixteen.push(await timed(16));
  }
  const roundTrip = Math.min(...none);
  return { launch: Math.max(0, (Math.min(...sixteen) - roundTrip) / 16), roundTrip };
}
