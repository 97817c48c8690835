/**
 * The page's (or process's) one shared device, and one generation on a session of its own: what
 * the README's first example uses (session.ts holds the session itself).
 */
import { type AcquiredDevice, acquireDevice } from './device.ts';
import type { GeneratedToken } from './generate.ts';
import type { LoadedModel } from '../loader/types.ts';
import { type DeviceSource, type GenerateRequest, Session, type SessionOptions, type TokenStream } from './session.ts';

let shared: Promise<AcquiredDevice> | undefined;
/**
 * One device for the page (or process), opened on first use and reopened after it is lost.
 * Sessions given it share it and never destroy it.
 */
export function sharedDevice(): Promise<AcquiredDevice> {
  if (!shared) {
    const p = acquireDevice();
    shared = p;
    const forget = () => {
      if (shared === p) shared = undefined;
    };
    p.then((d) => d.device.lost.then(forget), forget);
  }
  return shared;
}

export interface StreamOptions extends GenerateRequest, Omit<SessionOptions, 'device'> {
  /** The device (default: sharedDevice(), unless `adapter` names one). */
  device?: DeviceSource;
}

/**
 * One generation on a session of its own (the README's example): the executor is built on the
 * first token and freed when the stream ends; the device is the shared one unless given.
 */
export function createGenerator(model: LoadedModel, o: StreamOptions = {}): TokenStream {
  const { device, adapter, context, log, tuning, ...req } = o;
  const session = new Session(model, { device: device ?? (adapter === undefined ? sharedDevice : undefined), adapter, context, log, tuning });
  const g = session.generate(req);
  async function* owned(): AsyncGenerator<GeneratedToken, void, undefined> {
    try {
      yield* g;
    } finally {
      await session.dispose();
    }
  }
  const stream = Object.assign(owned(), { promptTokens: g.promptTokens, result: () => g.result() });
  return Object.defineProperty(stream, 'executor', { get: () => g.executor, enumerable: true }) as TokenStream;
}
