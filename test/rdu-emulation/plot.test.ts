import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { PRESETS } from '../../src/rdu-emulation/presets/index.ts';
import { TABLE1_WORKLOAD, plotSeries, renderPlotSvg } from '../../src/rdu-emulation/timing/index.ts';

const SVG_PATH = new URL('../../docs/timing-model.svg', import.meta.url);

describe('plot', () => {
  const shape = PRESETS['llama-3.1-8b']!;
  it('series: looped >= per-layer, both under the roofline, at 1, 2, 4, 8, 16 sockets', () => {
    const s = plotSeries(shape, TABLE1_WORKLOAD);
    expect(s.sockets).toEqual([1, 2, 4, 8, 16]);
    s.sockets.forEach((_, i) => {
      expect(s.looped[i]!).toBeGreaterThan(s.perLayer[i]!);
      expect(s.looped[i]!).toBeLessThanOrEqual(s.roofline[i]!);
    });
  });
  it('renders well-formed SVG with every series named', () => {
    const svg = renderPlotSvg(shape, TABLE1_WORKLOAD);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    for (const name of ['roofline (HBM)', 'looping on', 'looping off (per layer)', 'DGX H100, per-op']) expect(svg).toContain(name);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    expect(svg.match(/<polyline/g)).toHaveLength(3);
  });
  // UPDATE_TIMING_SVG=1 npx vitest run test/rdu-emulation/plot.test.ts rewrites the committed file.
  it('docs/timing-model.svg is the current model', async (ctx) => {
    const svg = renderPlotSvg(shape, TABLE1_WORKLOAD);
    if (process.env.UPDATE_TIMING_SVG) {
      // Rewritten from the model, so a comparison with it would prove nothing.
      await writeFile(SVG_PATH, svg);
      const why = `the comparison: UPDATE_TIMING_SVG is set, ${SVG_PATH.pathname} rewritten`;
      console.log(`SKIPPED ${why}`);
      ctx.skip(why);
    }
    expect(await readFile(SVG_PATH, 'utf8')).toBe(svg);
  });
});
