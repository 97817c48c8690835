/**
 * Correctness on whatever adapter kloop picks (meant for a machine with a real GPU): every GPU
 * mode against the CPU reference (float64) on the real models, with the reference fixtures'
 * tokens teacher-forced and 200 free-running greedy steps. Prints one line per mode and exits
 * non-zero on any disagreement.
 *
 *   node kloop-check.mjs            (bundled by scripts/gpu-host/pack.sh)
 *   npx tsx scripts/gpu-host/check.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { acquireDevice } from '../../src/engine/device.ts';
import { type Mode, createExecutor } from '../../src/engine/executor.ts';
import { GREEDY } from '../../src/engine/sampler.ts';
import { loadModel } from '../../src/loader/index.ts';
import { modelMatrices, typeSummary } from '../../src/loader/quant.ts';

const models = process.env.KLOOP_MODELS ?? 'weights';
const fixtures = process.env.KLOOP_FIXTURES;
const gpu = await acquireDevice(process.env.KLOOP_ADAPTER);
console.log(`adapter: ${gpu.info.vendor} / ${gpu.info.architecture} / ${gpu.info.description} (${gpu.name})`);

const rel = (a: Float32Array, b: Float32Array) => {
  let d = 0;
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / n);
};
const top1 = (a: Float32Array) => a.reduce((bi, v, i, arr) => (v > arr[bi] ? i : bi), 0);

let failures = 0;
const summary: unknown[] = [];
// The f32 models, then the quantized GGUF files llama.cpp wrote (their packed weights are decoded
// inside the kernels), each with its fixture when one is carried.
const MODELS: { name: string; file: string; steps: number; fixture?: [string, string] }[] = [
  { name: 'stories260K', file: 'stories260K/stories260K.bin', steps: 200, fixture: ['stories260K', 'once_upon_a_time'] },
  { name: 'aidreams260K', file: 'aidreams260K/aidreams260K.bin', steps: 127 },
  ...['stories260K-Q4_0', 'stories260K-Q4_K_M', 'synthetic-k512-Q4_K_M', 'synthetic-k512-Q6_K'].map((q) => ({
    name: q, file: `quant/${q}.gguf`, steps: 120, fixture: ['quant', q] as [string, string],
  })),
];
for (const { name, file, steps: want, fixture } of MODELS) {
  if (!fs.existsSync(path.join(models, file))) {
    console.log(`${name}: not carried, skipped`);
    continue;
  }
  const model = await loadModel(path.join(models, file));
  const steps = Math.min(want, model.config.seqLen);
  let forced: number[] = [1, 403, 407, 1552 % model.config.vocabSize, 9, 29, 45];
  let fixtureLogits: Float32Array | undefined;
  if (fixtures && fixture && fs.existsSync(path.join(fixtures, fixture[0], `${fixture[1]}.json`))) {
    const meta = JSON.parse(fs.readFileSync(path.join(fixtures, fixture[0], `${fixture[1]}.json`), 'utf8'));
    const raw = fs.readFileSync(path.join(fixtures, fixture[0], `${fixture[1]}.logits.f32`));
    forced = meta.tokens.slice(0, meta.positions);
    fixtureLogits = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  }
  const ref = await createExecutor(model, 'reference', async () => gpu);
  const refLogits: Float32Array[] = [];
  for (let p = 0; p < forced.length; p++) refLogits.push(await ref.forward(forced[p], p));
  const refTokens = await ref.decode([model.config.bosId], 0, steps, GREEDY);
  for (const [mode, k] of [['per-op', 1], ['per-layer', 1], ['looped', 1], ['looped', 16]] as [Mode, number][]) {
    const ex = await createExecutor(model, mode, async () => gpu, { tokensPerDispatch: k, poison: true });
    let worst = 0;
    let worstFixture = 0;
    let agree = 0;
    for (let p = 0; p < forced.length; p++) {
      const l = await ex.forward(forced[p], p);
      worst = Math.max(worst, rel(l, refLogits[p]));
      if (fixtureLogits) worstFixture = Math.max(worstFixture, rel(l, fixtureLogits.subarray(p * l.length, (p + 1) * l.length)));
      if (top1(l) === top1(refLogits[p])) agree++;
    }
    // The batched forward (prefill): every forced position's logits from chunked passes.
    let worstBatched = 0;
    if (ex.forwardMany) {
      const rows = await ex.forwardMany(forced, 0, 'all');
      for (let p = 0; p < forced.length; p++) worstBatched = Math.max(worstBatched, rel(rows[p]!, refLogits[p]));
    }
    const toks = await ex.decode([model.config.bosId], 0, steps, GREEDY);
    const same = toks.every((t, i) => t === refTokens[i]) && toks.length === refTokens.length;
    const ok = worst <= 1e-4 && worstBatched <= 1e-4 && (!fixtureLogits || worstFixture <= 1e-4) && agree === forced.length && same;
    if (!ok) failures++;
    const stats = ex.stats as { workgroups: number; fallbacks: number };
    const line = {
      model: name, weights: typeSummary(modelMatrices(model.weights)), mode: `${mode}${mode === 'looped' ? `:${k}` : ''}`, maxRelErrVsReference: worst, batchedMaxRelErrVsReference: worstBatched,
      maxRelErrVsFixture: fixtureLogits ? worstFixture : null, top1Agreement: `${agree}/${forced.length}`,
      greedyTokensIdentical: `${same} (${steps} steps)`, workgroups: stats.workgroups, fallbacks: stats.fallbacks, ok,
    };
    summary.push(line);
    console.log(JSON.stringify(line));
    ex.destroy();
  }
}
if (process.env.KLOOP_CHECK_OUT) fs.writeFileSync(process.env.KLOOP_CHECK_OUT, JSON.stringify({ adapter: gpu.info, results: summary }, null, 2));
console.log(failures === 0 ? 'check: all modes agree with the CPU reference' : `check: ${failures} mode(s) disagree`);
process.exit(failures === 0 ? 0 : 1);
