/**
 * kloop in the browser (also usable in Node): load a model from a URL, an ArrayBuffer or a File,
 * open a session on it (one device, executors built on first use), and stream tokens in any mode.
 *
 *   import { loadModel, createGenerator } from 'kloop/browser';
 *   const model = await loadModel({ model: '/models/stories260K/stories260K.bin', tokenizer: '/models/stories260K/tok512.bin' });
 *   for await (const t of createGenerator(model, { prompt: 'Once upon a time', mode: 'looped', maxTokens: 64 })) out.textContent += t.text;
 *
 * Built into web/dist/kloop.js by `npm run build:web` (src/browser/build.ts). Nothing here
 * imports a Node module; the Node entry (src/index.ts) adds loading from paths.
 */
export {
  loadModel,
  loadModelFromBytes,
  readBytes,
  tokenizerFromBytes,
  detectBytesFormat,
  sourceLabel,
  type ByteSource,
  type ModelFiles,
  type ModelSource,
  type LoadOptions,
  type LoadProgress,
  type BytesFormat,
} from './load.ts';
export { createGenerator, sharedDevice, type StreamOptions } from '../engine/stream.ts';
export {
  openSession,
  Session,
  parameterCount,
  DEFAULTS,
  REFERENCE_ADAPTER,
  type SessionOptions,
  type ExecutorChoice,
  type GenerateRequest,
  type TokenStream,
  type SessionResult,
  type DecodeStats,
  type TimedDecode,
  type DeviceSource,
} from '../engine/session.ts';
export { benchmark, compareModes, GPU_MODES, type GpuMode, type BenchOptions, type BenchResult } from '../engine/compare.ts';
export { acquireDevice } from '../engine/device.ts';
export { checkWebGPU, OPTIONAL_FEATURES, type WebGPUSupport } from './support.ts';
export { createExecutor, MODES, type Executor, type ExecutorStats, type Mode } from '../engine/executor.ts';
export type { AcquiredDevice, AdapterDescription } from '../engine/device.ts';
export type { GenerateOptions, GeneratedToken, GenerationResult, StopReason } from '../engine/generate.ts';
export { GREEDY, type SamplingOptions } from '../engine/sampler.ts';
export type { LoadedModel, Matrix, ModelConfig, PackedMatrix, Tokenizer, WeightType } from '../loader/types.ts';
export { FORMATS, dequantize, matrixType, modelMatrices, typeSummary } from '../loader/quant.ts';
export { KloopError, OptionError } from '../errors.ts';
