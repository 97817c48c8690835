import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KloopError } from '../../src/errors.ts';
import { timingModelCommand } from '../../src/cli/timing-model.ts';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await timingModelCommand(argv, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
  return { code, out, err };
}

describe('kloop timing-model', () => {
  it('default: Llama-3.1-8B Table-1 block and a row per system and mode', async () => {
    const { code, out } = await run([]);
    expect(code).toBe(0);
    expect(out).toMatch(/^llama-3\.1-8b, batch 1, context 4096/);
    expect(out).toMatch(/GFLOPs \/ token\s+20\.4/);
    expect(out).toMatch(/memory-bound on DGX H100\s+yes/);
    for (const sys of ['SN40L-1', 'SN40L-8', 'SN40L-16', 'DGX-H100']) {
      for (const mode of ['per-op', 'per-layer', 'looped']) expect(out).toMatch(new RegExp(`${sys}\\s+${mode}\\s+\\d+`));
    }
  });

  it('--validate --json: every case fit or held out, at least four held out', async () => {
    const { code, out } = await run(['--validate', '--json']);
    expect(code).toBe(0);
    const { cases } = JSON.parse(out) as { cases: { id: string; role: string; paper: unknown; model: unknown; pass: boolean }[] };
    for (const c of cases) {
      expect(Object.keys(c)).toEqual(expect.arrayContaining(['id', 'role', 'paper', 'model', 'pass']));
      expect(['fit', 'held-out']).toContain(c.role);
    }
    expect(cases.filter((c) => c.role === 'held-out').length).toBeGreaterThanOrEqual(4);
    expect((await run(['--validate'])).out).toMatch(/held out: \d+ of \d+ pass/);
  });

  it('--json has the documented shape', async () => {
    const { code, out } = await run(['--json', '--model', 'llama-3.1-70b', '--context', '8192', '--sockets', '8,16']);
    expect(code).toBe(0);
    const j = JSON.parse(out);
    expect(Object.keys(j.model).sort()).toEqual(
      ['name', 'params', 'paramsGiB', 'kvGiB', 'gflopsPerToken', 'gibPerToken', 'flopsPerByte', 'memoryBoundOnH100'].sort(),
    );
    expect(j.model.name).toBe('llama-3.1-70b');
    expect(typeof j.model.memoryBoundOnH100).toBe('boolean');
    expect(j.systems).toHaveLength(9);
    for (const row of j.systems) {
      expect(Object.keys(row).sort()).toEqual(
        ['system', 'mode', 'callsPerToken', 'tokensPerSecond', 'rooflineTokensPerSecond', 'percentOfPeak'].sort(),
      );
      expect(['SN40L-8', 'SN40L-16', 'DGX-H100']).toContain(row.system);
      expect(['per-op', 'per-layer', 'looped']).toContain(row.mode);
      for (const k of ['callsPerToken', 'tokensPerSecond', 'rooflineTokensPerSecond', 'percentOfPeak']) {
        expect(Number.isFinite(row[k])).toBe(true);
      }
      expect(row.tokensPerSecond).toBeLessThanOrEqual(row.rooflineTokensPerSecond);
    }
    expect(j.notes.join('\n')).toMatch(/457 tokens\/s exceeds the plain-decode roofline.*speculative decoding/);
  });

  it('--model accepts a config.json path or a folder holding one, and --flag=value', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kloop-timing-'));
    await mkdir(join(dir, 'tiny'));
    const cfg = {
      model_type: 'llama',
      hidden_size: 2048,
      intermediate_size: 8192,
      num_hidden_layers: 16,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 64,
      vocab_size: 128256,
      tie_word_embeddings: true,
    };
    await writeFile(join(dir, 'tiny', 'config.json'), JSON.stringify(cfg));
    const a = JSON.parse((await run(['--json', `--model=${join(dir, 'tiny', 'config.json')}`])).out);
    const b = JSON.parse((await run(['--json', '--model', join(dir, 'tiny')])).out);
    const preset = JSON.parse((await run(['--json', '--model', 'llama-3.2-1b'])).out);
    expect(a.model.name).toBe('tiny');
    expect(a.model.params).toBe(preset.model.params);
    expect(b.systems).toEqual(a.systems);
  });

  it('--model reads a llama2.c checkpoint header', async () => {
    const { out } = await run(['--model', '../shared/models/stories260K/stories260K.bin', '--sockets', '1', '--json']);
    const j = JSON.parse(out);
    expect(j.model.name).toBe('stories260K');
    expect(j.model.params).toBeGreaterThan(2e5);
    expect(j.model.params).toBeLessThan(3e5);
  });

  it('--svg writes the plot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kloop-timing-'));
    const file = join(dir, 'plot.svg');
    const { err } = await run(['--json', '--svg', file]);
    expect(err).toContain('wrote');
    expect(await readFile(file, 'utf8')).toMatch(/^<svg[\s\S]*looping on[\s\S]*<\/svg>\n$/);
  });

  it('--help prints usage', async () => {
    const { code, out } = await run(['--help']);
    expect(code).toBe(0);
    expect(out).toMatch(/^usage: kloop timing-model/);
  });

  const bad: Array<[string[], RegExp]> = [
    [['--bogus'], /^--bogus: unknown flag/],
    [['stray'], /^stray: unexpected argument/],
    [['--context', 'abc'], /^--context: expected an integer >= 0, got "abc"/],
    [['--context', '-5'], /^--context: expected an integer >= 0, got "-5"/],
    [['--context'], /^--context: missing value/],
    [['--batch', '0'], /^--batch: expected an integer >= 1/],
    [['--sockets', '1,x'], /^--sockets: expected an integer >= 1, got "x"/],
    [['--sockets='], /^--sockets: empty value/],
    [['--json=yes'], /^--json: takes no value/],
    [['--flops', 'bogus'], /^--flops: unknown convention "bogus"/],
    [['--model', 'gpt-5'], /^--model: unknown model "gpt-5"/],
  ];
  for (const [argv, msg] of bad) {
    it(`${argv.join(' ')} -> KloopError naming the flag`, async () => {
      const p = run(argv);
      await expect(p).rejects.toBeInstanceOf(KloopError);
      await expect(p).rejects.toThrow(msg);
      const e = (await p.catch((x: unknown) => x)) as Error;
      expect(e.message).not.toContain('\n');
    });
  }
});
