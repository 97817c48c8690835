/** The WebGPU device model: microbenchmarks of an adapter and the timing model's equations on them. */
export * from './microbench.ts';
export * from './model.ts';
