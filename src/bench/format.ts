/** The benchmark report as text (terminal, RESULTS.md) and as the one JSON object of --json. */
import type { BenchReport } from './run.ts';

const f = (x: number, digits = 3): string => (x >= 1000 ? x.toFixed(0) : x >= 100 ? x.toFixed(1) : x.toPrecision(digits));
const pct = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(0)}%`;

export function modelLabel(r: BenchReport): string {
  const params = r.model.params >= 1e6 ? `${(r.model.params / 1e6).toFixed(1)}M` : `${(r.model.params / 1e3).toFixed(0)}K`;
  const mib = r.model.deviceBytes ? `, ${(r.model.deviceBytes / 2 ** 20).toFixed(1)} MiB on the device${r.model.weightStore === 'texture' ? ' (weights in textures)' : ''}${r.model.subgroups ? `, subgroup rows of ${r.model.subgroups}` : ''}${r.model.padStaging ? ', padded staging' : ''}${r.model.workgroupSize ? `, workgroups of ${r.model.workgroupSize}` : ''}${r.model.hostWait === 'spin' ? ', host spins on readbacks' : ''}` : '';
  return `${r.model.name}${r.model.synthetic && !r.model.name.includes('synthetic') ? ' (synthetic)' : ''}, ${params} params, weights ${r.model.weightTypes}${mib}`;
}

export function deviceLabel(r: BenchReport): string {
  return `${r.device.description} (${r.device.vendor}, ${r.device.architecture})`;
}

function table(head: string[], rows: string[][], markdown: boolean): string {
  if (markdown) {
    return [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n') + '\n';
  }
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

/** The human-readable report. `markdown` renders the tables as GitHub tables. */
export function formatReport(r: BenchReport, markdown = false): string {
  const out: string[] = [];
  const pred = new Map((r.predicted ?? []).map((p) => [p.mode, p]));
  out.push(`model:  ${modelLabel(r)}${r.model.synthetic ? ' -- SYNTHETIC weights (real shapes, seeded random values)' : ''}`);
  out.push(`device: ${deviceLabel(r)}, adapter "${r.adapter}"`);
  out.push(`date:   ${r.date} (host load average ${r.loadAverage.start.toFixed(1)} at start, ${r.loadAverage.end.toFixed(1)} at end)`);
  if (r.command) out.push(`command: ${r.command}`);
  out.push(
    `${r.tokens} tokens per measurement, ${r.repeat} interleaved repeats, median [min-max]; ` +
      `copy bandwidth ${f(r.copyBandwidthGBps)} GB/s [${f(r.copyBandwidthSpread.min)}-${f(r.copyBandwidthSpread.max)}]`,
  );
  out.push('');
  const head = ['mode', 'tokens/s', '[min-max]', 'ms/token', 'dispatches/tok', 'submits/tok', 'MB/tok', 'GB/s', '% copy BW'];
  if (r.predicted) head.push('predicted tok/s', 'error');
  const rows = r.results.map((m) => {
    const row = [
      m.mode, f(m.tokensPerSecond), `${f(m.spread.min)}-${f(m.spread.max)}`, f(m.msPerToken), f(m.dispatchesPerToken), f(m.submitsPerToken),
      f(m.bytesPerToken / 1e6), f(m.achievedGBps), `${f(m.percentOfCopyBandwidth)}%`,
    ];
    const p = pred.get(m.mode);
    if (r.predicted) row.push(p ? f(p.predictedTokensPerSecond) : '-', p ? pct(p.errorPercent) : '-');
    return row;
  });
  out.push(table(head, rows, markdown));
  if (r.peers.length > 0) {
    out.push(table(['peer (same run)', 'tokens/s', '[min-max]', 'tokens'], r.peers.map((p) => [p.name, f(p.tokensPerSecond), `${f(p.spread.min)}-${f(p.spread.max)}`, String(p.tokens)]), markdown));
  }
  if (r.prefill && r.prefill.length > 0) {
    out.push(table(['prefill (batched forward)', 'prompt tokens', 'tokens/s', '[min-max]', 'dispatches', 'x decode'], r.prefill.map((p) => [p.mode, String(p.promptTokens), f(p.tokensPerSecond), `${f(p.spread.min)}-${f(p.spread.max)}`, String(p.dispatches), `${p.overDecode.toFixed(2)}x`]), markdown));
  }
  const sp = Object.entries(r.speedups);
  if (sp.length > 0) out.push(`speedups: ${sp.map(([k, v]) => `${k} ${v.toFixed(2)}x`).join(', ')}`);
  const fused = r.results.find((m) => m.workgroups > 0);
  if (fused) {
    const barriers = r.results.filter((m) => m.gridBarriersPerToken > 0).map((m) => `${m.mode} ${f(m.gridBarriersPerToken)}`);
    out.push(`fused dispatches: ${fused.workgroups} workgroup${fused.workgroups === 1 ? '' : 's'}; grid barriers per token: ${barriers.length > 0 ? barriers.join(', ') : 'none'}`);
  }
  if (r.deviceModel) {
    const d = r.deviceModel;
    out.push(
      `device model: empty-kernel dispatch ${f(d.dispatchUs)} us, empty submit round trip ${f(d.roundTripUs)} us, grid barrier ${f(d.barrierUs)} us ` +
        `(${d.barrierParticipants} of ${d.barrierWorkgroups} workgroups joined; ${d.stepParticipants} join with the executor's step poll budget), discovery ${f(d.discoverUs)} us per fused dispatch, ` +
        `copy ${f(d.copyGBps)} GB/s, engine matvec ${f(d.matvecGBps)} GB/s (per-op width) / ${f(d.fusedMatvecGBps)} GB/s (fused width), ` +
        `engine stages ${f(d.stageMsPerToken.perOp)} ms/token (per-op dispatches) / ${f(d.stageMsPerToken.fused)} ms/token (fused, running)` +
        (d.stageMsPerToken.cold !== undefined ? ` / ${f(d.stageMsPerToken.cold)} ms/token (fused, first token of a dispatch${d.stageMsPerToken.perLayer === undefined ? '; per-layer\'s work' : ''})` : '') +
        (d.stageMsPerToken.perLayer !== undefined ? ` / ${f(d.stageMsPerToken.perLayer)} ms/token (per-layer dispatches)` : ''),
    );
    const calls = Object.entries(d.stageUsPerCall);
    if (calls.length > 0) out.push(`stage us per call (per-op dispatch / inside a fused dispatch): ${calls.map(([id, v]) => `${id} ${f(v.perOp)} / ${f(v.fused)}`).join(', ')}`);
    if (r.predicted) {
      out.push(
        'predicted ms/token = kernel + dispatch + barrier + round trip (dispatch and round trip: each mode\'s own kernels launched with no work): ' +
          r.predicted.map((p) => `${p.mode} ${f(p.breakdownMs.kernel)} + ${f(p.breakdownMs.dispatch)} + ${f(p.breakdownMs.barrier)} + ${f(p.breakdownMs.roundTrip)}`).join('; '),
      );
    }
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  return out.join('\n') + '\n';
}

/** The --json object: the fields the issue fixes first, then the extras. */
export function jsonReport(r: BenchReport): Record<string, unknown> {
  const o: Record<string, unknown> = {
    device: r.device,
    model: { name: r.model.name, synthetic: r.model.synthetic, params: r.model.params, weightTypes: r.model.weightTypes, deviceBytes: r.model.deviceBytes, weightStore: r.model.weightStore, subgroups: r.model.subgroups, padStaging: r.model.padStaging, workgroupSize: r.model.workgroupSize, hostWait: r.model.hostWait },
    copyBandwidthGBps: r.copyBandwidthGBps,
    results: r.results,
    peers: r.peers,
    ...(r.prefill && { prefill: r.prefill }),
    speedups: r.speedups,
  };
  if (r.predicted) o.predicted = r.predicted;
  if (r.deviceModel) {
    const { measurements: _m, ...rest } = r.deviceModel;
    void _m;
    o.deviceModel = rest;
  }
  o.copyBandwidthSpread = r.copyBandwidthSpread;
  o.adapter = r.adapter;
  o.date = r.date;
  o.tokens = r.tokens;
  o.repeat = r.repeat;
  o.loadAverage = r.loadAverage;
  if (r.command) o.command = r.command;
  o.notes = r.notes;
  return o;
}
