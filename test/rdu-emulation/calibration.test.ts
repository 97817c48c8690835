/** Re-runs the calibration and checks the recorded constants (calibrated.ts) against it. */
import { describe, expect, it } from 'vitest';
import { CALIBRATED, TARGETS, calibrate } from '../../src/rdu-emulation/timing/index.ts';
import { expectWithin } from './helpers.ts';

describe('calibration', () => {
  const fit = calibrate();
  it('recorded constants match a fresh fit (within 1%)', () => {
    expectWithin(CALIBRATED.snBoundary, fit.snBoundary, 0.01, 'SN40L boundary');
    expectWithin(CALIBRATED.snHostPerStep, fit.snHostPerStep, 0.01, 'SN40L host per step');
    expectWithin(CALIBRATED.snHostIssuePerCall, fit.snHostIssuePerCall, 0.01, 'SN40L host issue per call');
    expectWithin(CALIBRATED.dgxPerCall, fit.dgxPerCall, 0.01, 'DGX per call');
  });
  it('the per-boundary cost is tens of microseconds, as the doc derives', () => {
    expect(fit.snBoundary).toBeGreaterThan(10e-6);
    expect(fit.snBoundary).toBeLessThan(100e-6);
  });
  it('fits its targets: T6 and T9 within 5%, T12 within 10%, T4 exactly, T10 constraint held', () => {
    const a = fit.achieved;
    expectWithin(a.t6TokensPerSecond, TARGETS.t6TokensPerSecond, 0.05, 'T6');
    expectWithin(a.t9GeoMeanSpeedup, TARGETS.t9GeoMeanSpeedup, 0.05, 'T9 geomean');
    expectWithin(a.t9MaxSpeedup, TARGETS.t9MaxSpeedup, 0.05, 'T9 max');
    expectWithin(a.t12MaxDecodeSpeedup, TARGETS.t12MaxDecodeSpeedup, 0.1, 'T12 max');
    expectWithin(a.t12MinDecodeSpeedup, TARGETS.t12MinDecodeSpeedup, 0.1, 'T12 min');
    expectWithin(a.t4DgxTokensPerSecond, TARGETS.t4DgxTokensPerSecond, 1e-9, 'T4');
    expect(a.t10MinPercentOfPeak).toBeGreaterThanOrEqual(TARGETS.t10MinPercentOfPeak);
    expect(fit.rmsLogResidual.sn).toBeLessThan(0.05);
    expect(fit.rmsLogResidual.orchestration).toBeLessThan(0.05);
  });
});
