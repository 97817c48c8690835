import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { modelsDir } from '../helpers/paths.ts';
import { detectFormat, loadModel } from '../../src/loader/index.ts';
import { expectKloopError } from './helpers.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'kloop-index-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('format detection', () => {
  it('detects llama2.c, GGUF (by extension or magic) and Hugging Face folders', async () => {
    expect((await detectFormat(path.join(modelsDir, 'stories260K/stories260K.bin'))).format).toBe('llama2c');
    expect((await detectFormat(path.join(modelsDir, 'stories260K/stories260K.gguf'))).format).toBe('gguf');
    const renamed = path.join(tmp, 'model.bin');
    copyFileSync(path.join(modelsDir, 'stories260K/stories260K.gguf'), renamed);
    expect((await detectFormat(renamed)).format).toBe('gguf');
    const m = await loadModel(renamed);
    expect(m.format).toBe('gguf');
  });

  it('reports a missing path and a folder without config.json', async () => {
    await expectKloopError(loadModel(path.join(tmp, 'nope.bin')), /nope\.bin: cannot open \(ENOENT\)/);
    const dir = path.join(tmp, 'empty');
    mkdirSync(dir);
    await expectKloopError(loadModel(dir), /empty: folder has no config\.json/);
  });

  it('asks for --tokenizer when several tokenizers sit beside the model', async () => {
    const dir = path.join(tmp, 'two');
    mkdirSync(dir);
    copyFileSync(path.join(modelsDir, 'stories260K/stories260K.bin'), path.join(dir, 'm.bin'));
    copyFileSync(path.join(modelsDir, 'stories260K/tok512.bin'), path.join(dir, 'tok512.bin'));
    copyFileSync(path.join(modelsDir, 'aidreams260K/tok512.bin'), path.join(dir, 'tok512b.bin'));
    await expectKloopError(loadModel(path.join(dir, 'm.bin')), /m\.bin: several tokenizers .*tok512\.bin, tok512b\.bin.*--tokenizer/);
    const m = await loadModel(path.join(dir, 'm.bin'), { tokenizer: path.join(dir, 'tok512.bin') });
    expect(m.tokenizer.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });
});
