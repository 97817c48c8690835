/** Where a command writes: stdout and stderr by default; tests may capture them. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/**
 * Thrown by processIo.out once the reader of stdout has gone (EPIPE: `kloop generate | head`):
 * the command stops where it is, and main() exits with code 0 and prints nothing.
 */
export class OutputClosed extends Error {
  constructor() {
    super('stdout was closed by its reader');
  }
}

const watched = new WeakSet<NodeJS.WriteStream>();

/**
 * Whether the reader of `stream` has gone. The stream's EPIPE 'error' event is taken here, where
 * without a listener it would end the process with a stack trace; other errors stay fatal.
 */
function readerGone(stream: NodeJS.WriteStream): boolean {
  if (!watched.has(stream)) {
    watched.add(stream);
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
  return (stream.errored as NodeJS.ErrnoException | null)?.code === 'EPIPE';
}

export const processIo: Io = {
  out: (text) => {
    if (readerGone(process.stdout)) throw new OutputClosed();
    process.stdout.write(text);
  },
  err: (text) => {
    if (!readerGone(process.stderr)) process.stderr.write(text);
  },
};
