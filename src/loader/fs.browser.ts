/**
 * Browser stand-in for fs.ts: there is no file system to read paths from. The browser API
 * (src/browser/load.ts) fetches URLs and reads Files / ArrayBuffers into memory instead.
 */
import type * as nodeFs from 'node:fs/promises';
import { KloopError } from '../errors.ts';

export type { FileHandle } from 'node:fs/promises';

const noFs = async (): Promise<never> => {
  throw new KloopError('reading a file by path needs Node; in the browser pass a URL, an ArrayBuffer or a File');
};

export const open: typeof nodeFs.open = noFs;
export const readFile: typeof nodeFs.readFile = noFs;
export const stat: typeof nodeFs.stat = noFs;
