/** `kloop devices`: the WebGPU adapters Dawn offers, their limits, and the one kloop picks. */
import { acquireDevice, describeAdapters } from '../engine/device.ts';
import { parseFlags } from './args.ts';
import type { Io } from './io.ts';

export const DEVICES_USAGE = `usage: kloop devices [--adapter NAME] [--json]
  --adapter NAME    show which adapter --adapter NAME would pick
  --json            print one JSON object: {"adapters": [...], "picked": NAME}
`;

const FLAGS = { adapter: 'string', json: 'boolean' } as const;

export async function devicesCommand(argv: string[], io: Io): Promise<number> {
  const f = parseFlags('devices', argv, FLAGS);
  if (f.help) {
    io.out(DEVICES_USAGE);
    return 0;
  }
  const adapters = await describeAdapters();
  // Ask the device module itself which adapter it would open (its ranking, or --adapter).
  const picked = await acquireDevice(f.adapter, () => {});
  picked.device.destroy();
  if (f.json) {
    io.out(JSON.stringify({ adapters, picked: picked.name }, null, 2) + '\n');
    return 0;
  }
  for (const a of adapters) {
    const mark = a.name === picked.name ? '*' : ' ';
    io.out(`${mark} ${a.name}\n    ${a.info.vendor} / ${a.info.architecture} / ${a.info.description}\n`);
    io.out(`    features: ${a.features.join(', ') || '(none)'}\n`);
    io.out(`    limits: ${Object.entries(a.limits).map(([k, v]) => `${k} ${v}`).join(', ')}\n`);
  }
  io.out(`kloop uses: ${picked.name}${f.adapter === undefined ? '' : ` (--adapter ${f.adapter})`}\n`);
  return 0;
}
