// One line per bench report (bench-NAME.json) for the GPU host's run.sh: tokens/s with the spread,
// MB/token and % of copy bandwidth per mode, peers, prefill, and with --predict the device
// model's stage times (us per call inside a fused dispatch) and prediction errors.
//   node summary.mjs bench-*.json
import fs from 'node:fs';
const n = (x, d = 0) => (x === undefined || x === null ? '-' : x.toFixed(d));
for (const f of process.argv.slice(2)) {
  let r;
  try {
    r = JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch {
    console.log(`${f}: no report`);
    continue;
  }
  const name = f.replace(/.*bench-/, '').replace(/\.json$/, '');
  const modes = r.results.map((x) => `${x.mode} ${n(x.tokensPerSecond)} [${n(x.spread.min)}-${n(x.spread.max)}] ${n(x.bytesPerToken / 1e6)} MB ${n(x.percentOfCopyBandwidth)}%`);
  const peers = (r.peers ?? []).map((p) => `${p.name} ${n(p.tokensPerSecond)} [${n(p.spread.min)}-${n(p.spread.max)}]`);
  const prefill = (r.prefill ?? []).map((p) => `prefill ${p.mode} ${n(p.tokensPerSecond)}`);
  console.log([name, r.model.weightTypes, `wg ${r.model.workgroupSize ?? '?'}`, `${n(r.copyBandwidthGBps)} GB/s copy`, ...modes, ...peers, ...prefill].join(' | '));
  const d = r.deviceModel;
  if (d) {
    console.log(`  stages ms/token: per-op ${n(d.stageMsPerToken.perOp, 3)}, fused ${n(d.stageMsPerToken.fused, 3)}, cold ${n(d.stageMsPerToken.cold, 3)}, per-layer ${n(d.stageMsPerToken.perLayer, 3)}; barrier ${n(d.barrierUs, 2)} us over ${d.barrierWorkgroups}`);
    console.log(`  us per call (per-op / fused): ${Object.entries(d.stageUsPerCall ?? {}).map(([id, v]) => `${id} ${n(v.perOp, 1)}/${n(v.fused, 1)}`).join(', ')}`);
    console.log(`  predicted: ${(r.predicted ?? []).map((p) => `${p.mode} ${n(p.predictedTokensPerSecond)} (${p.errorPercent > 0 ? '+' : ''}${n(p.errorPercent)}%)`).join(', ')}`);
  }
}
