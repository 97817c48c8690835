/**
 * Stop strings over a token stream: text is released as soon as it cannot be the start of a
 * stop string; the first stop string found ends the text just before it (OpenAI semantics:
 * the stop string itself is not returned).
 */
export class StopMatcher {
  private held = '';
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Adds a piece of text; returns the text that is safe to emit and whether a stop string was hit. */
  push(piece: string): { text: string; stopped: boolean } {
    const buf = this.held + piece;
    if (this.stops.length === 0) return { text: buf, stopped: false };
    let at = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.held = '';
      return { text: buf.slice(0, at), stopped: true };
    }
    // Hold back the longest suffix that some stop string begins with.
    let keep = 0;
    for (let n = Math.min(this.longest - 1, buf.length); n > 0; n--) {
      const tail = buf.slice(buf.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) {
        keep = n;
        break;
      }
    }
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** The text still held back at the end of the stream. */
  flush(): string {
    const t = this.held;
    this.held = '';
    return t;
  }
}
