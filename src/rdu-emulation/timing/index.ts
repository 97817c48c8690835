/** The SN40L / DGX H100 analytical decode timing model (see docs/timing-model.md). */
export * from './types.ts';
export * from './calls.ts';
export * from './flops.ts';
export * from './model.ts';
export * from './systems.ts';
export { CALIBRATED } from './calibrated.ts';
export * from './calibration.ts';
export * from './report.ts';
export * from './plot.ts';
export * from './validate.ts';
