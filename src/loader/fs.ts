/**
 * The file-system calls the loaders make (Node). The browser bundle replaces this module with
 * fs.browser.ts (see src/browser/build.ts), so the modules it shares with Node (util, llama2c,
 * gguf, tokenizer) import nothing Node-only; in-memory models go through BinaryFile.fromBytes.
 */
export { open, readFile, stat } from 'node:fs/promises';
export type { FileHandle } from 'node:fs/promises';
