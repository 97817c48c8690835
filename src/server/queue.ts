/**
 * The server's request queue: one generation runs at a time (the executor holds one KV cache),
 * the others wait first come, first served. At most `maxWaiting` wait; one more is refused at
 * once (the server answers 429). A waiting request whose signal aborts (its client went away)
 * leaves the queue without ever running.
 */
export class QueueFullError extends Error {
  constructor(readonly maxWaiting: number) {
    super(`the server is busy: ${maxWaiting} requests are already waiting; retry later`);
    this.name = 'QueueFullError';
  }
}

interface Waiter {
  grant(): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class RequestQueue {
  private running = false;
  private readonly waiting: Waiter[] = [];
  /** Requests served, and requests that left the queue because their client went away. */
  readonly counts = { served: 0, abandoned: 0, refused: 0 };

  constructor(readonly maxWaiting: number) {}

  /** Whether a generation holds the model now. */
  get active(): boolean {
    return this.running;
  }

  /** Requests waiting for the model. */
  get pending(): number {
    return this.waiting.length;
  }

  /**
   * Waits for this request's turn and resolves with the function that ends it (call it exactly
   * once). Throws QueueFullError at once when the queue is full; rejects with the signal's
   * reason when it aborts first.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.running && this.waiting.length === 0) {
      this.running = true;
      this.counts.served++;
      return Promise.resolve(this.releaser());
    }
    if (this.waiting.length >= this.maxWaiting) {
      this.counts.refused++;
      throw new QueueFullError(this.maxWaiting);
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        grant: () => {
          if (w.onAbort) signal?.removeEventListener('abort', w.onAbort);
          this.counts.served++;
          resolve(this.releaser());
        },
        signal,
      };
      if (signal) {
        w.onAbort = () => {
          const i = this.waiting.indexOf(w);
          if (i >= 0) {
            this.waiting.splice(i, 1);
            this.counts.abandoned++;
            reject(signal.reason);
          }
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.waiting.push(w);
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next.grant();
      else this.running = false;
    };
  }
}
