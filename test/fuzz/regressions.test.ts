/**
 * Corrupt files the fuzz suite found loading silently, or taking minutes, before the loader
 * checked them: each must now be a one-line KloopError naming the file, quickly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertToHF, loadModel } from '../../src/loader/index.ts';
import { modelsDir } from '../helpers/paths.ts';
import { expectKloopError } from '../loader/helpers.ts';
import { concat, ggufLayout, joinSafetensors, setU32, splitSafetensors, utf8 } from './formats.ts';
import { HANG_MS } from './run.ts';

let root: string;
let hfDir: string;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'kloop-fuzz-reg-'));
  hfDir = join(root, 'hf');
  await convertToHF(await loadModel(join(modelsDir, 'stories260K/stories260K.bin')), hfDir);
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** A copy of the HF folder with `file` replaced by `bytes`. */
async function hfWith(file: string, bytes: Uint8Array): Promise<string> {
  const dir = join(root, `v${n++}`);
  await cp(hfDir, dir, { recursive: true });
  await writeFile(join(dir, file), bytes);
  return dir;
}

async function tokenizerJson(): Promise<Record<string, unknown> & { model: { vocab: Record<string, number> } }> {
  return JSON.parse(await readFile(join(hfDir, 'tokenizer.json'), 'utf8'));
}

describe('tokenizer.json token ids', () => {
  it('a huge id is refused at once (it used to take minutes)', async () => {
    const tok = await tokenizerJson();
    tok.model.vocab['\u2581e'] = 2 ** 31;
    const dir = await hfWith('tokenizer.json', utf8(JSON.stringify(tok)));
    // CPU time, as the fuzz runner counts a hang: a loaded machine does not make it slow.
    const cpu0 = process.cpuUsage();
    await expectKloopError(loadModel(dir), /tokenizer\.json: bad token id 2147483648 for "▁e"/);
    const cpu = process.cpuUsage(cpu0);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(HANG_MS);
  });

  it.each([[-1], [1.5], [2 ** 40], ['7']])('vocab id %j is refused (it used to be dropped silently)', async (id) => {
    const tok = await tokenizerJson();
    (tok.model.vocab as Record<string, unknown>)['\u2581e'] = id;
    await expectKloopError(loadModel(await hfWith('tokenizer.json', utf8(JSON.stringify(tok)))), /tokenizer\.json: bad token id/);
  });

  it('an added token with a negative id is refused', async () => {
    const tok = await tokenizerJson();
    tok.added_tokens = [{ id: -1, content: 'x', special: true }];
    await expectKloopError(loadModel(await hfWith('tokenizer.json', utf8(JSON.stringify(tok)))), /tokenizer\.json: bad token id -1 for "x"/);
  });
});

describe('invalid UTF-8 in JSON files', () => {
  const bad = Uint8Array.of(0xc0, 0x80);
  it.each(['config.json', 'tokenizer.json'])('%s', async (file) => {
    const text = await readFile(join(hfDir, file), 'utf8');
    const at = text.indexOf('"', text.indexOf(file === 'config.json' ? 'LlamaForCausalLM' : '<unk>') - 1) + 1;
    const bytes = concat(utf8(text.slice(0, at)), bad, utf8(text.slice(at)));
    await expectKloopError(loadModel(await hfWith(file, bytes)), new RegExp(`${file.replace('.', '\\.')}: file is not valid UTF-8 text`));
  });

  it('the safetensors header', async () => {
    const st = splitSafetensors(new Uint8Array(await readFile(join(hfDir, 'model.safetensors'))));
    const text = new TextDecoder().decode(st.headerBytes);
    const at = text.indexOf('kloop convert');
    const header = concat(utf8(text.slice(0, at)), Uint8Array.of(0xff), utf8(text.slice(at + 1)));
    const dir = await hfWith('model.safetensors', joinSafetensors(header, st.data));
    await expectKloopError(loadModel(dir), /model\.safetensors: safetensors header is not valid UTF-8 text/);
  });
});

describe('GGUF tokenizer arrays of the wrong type', () => {
  it.each([
    ['tokenizer.ggml.scores', 4, /tokenizer\.ggml\.scores has element type 4 \(float32 expected\)/],
    ['tokenizer.ggml.scores', 5, /tokenizer\.ggml\.scores has element type 5/],
    ['tokenizer.ggml.token_type', 6, /tokenizer\.ggml\.token_type has element type 6 \(int32 expected\)/],
  ] as const)('%s as type %i', async (key, type, re) => {
    const b = new Uint8Array(await readFile(join(modelsDir, 'stories260K/stories260K.gguf')));
    const kv = ggufLayout(b).kvs.find((k) => k.key === key)!;
    const p = join(root, `v${n++}.gguf`);
    await writeFile(p, setU32(b, kv.arrayTypePos!, type));
    await expectKloopError(loadModel(p), re);
  });
});

describe('tokenizer.json parts that only fail when used', () => {
  it('a post_processor template that is not a list fails at load, not with a TypeError at encode', async () => {
    const tok = await tokenizerJson();
    tok.post_processor = { type: 'TemplateProcessing', single: 5 };
    await expectKloopError(loadModel(await hfWith('tokenizer.json', utf8(JSON.stringify(tok)))), /tokenizer\.json: unsupported or broken tokenizer\.json/);
  });
});

describe('a layer count below the layers in the weights', () => {
  it('GGUF block_count', async () => {
    const b = new Uint8Array(await readFile(join(modelsDir, 'stories260K/stories260K.gguf')));
    const kv = ggufLayout(b).kvs.find((k) => k.key === 'llama.block_count')!;
    const p = join(root, `v${n++}.gguf`);
    await writeFile(p, setU32(b, kv.valuePos, 1));
    await expectKloopError(loadModel(p), /tensor blk\.\d\.\S+ belongs to layer \d but llama\.block_count is 1/);
  });

  it('config.json num_hidden_layers', async () => {
    const cfg = JSON.parse(await readFile(join(hfDir, 'config.json'), 'utf8'));
    const dir = await hfWith('config.json', utf8(JSON.stringify({ ...cfg, num_hidden_layers: 2 })));
    await expectKloopError(loadModel(dir), /config\.json: num_hidden_layers is 2 but the weights hold tensor model\.layers\.\d/);
  });
});
