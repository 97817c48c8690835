/**
 * Fitted synchronization constants, recorded. They are produced by `calibrate()` in
 * calibration.ts (targets and method there and in docs/timing-model.md); the test
 * test/rdu-emulation/calibration.test.ts re-runs the fit and fails if these drift from it.
 * Kept in a file with no imports so systems.ts can use them without an import cycle.
 */
export const CALIBRATED = {
  /**
   * SN40L, seconds per synchronization boundary (call launch under hardware orchestration +
   * pipeline fill and drain + activation round trip). Fitted jointly with snHostPerStep.
   */
  snBoundary: 36.89e-6,
  /** SN40L, host seconds per decode step. Fitted jointly with snBoundary. */
  snHostPerStep: 24.71e-6,
  /** SN40L, host-orchestrated issue seconds per call (T12 maximum fit). */
  snHostIssuePerCall: 457.8e-6,
  /** DGX H100 (TensorRT-LLM), seconds per kernel call: launch + synchronization (T4 fit). */
  dgxPerCall: 6.216e-6,
} as const;
