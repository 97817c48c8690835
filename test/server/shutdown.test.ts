/**
 * SIGTERM to a real `kloop serve` on WebGPU (per-op mode: many dispatches per token, so a long
 * generation is still running when the signal comes) with a stream running and a request
 * waiting: the stream ends cleanly with an error event and [DONE], the waiting request gets a
 * 503, and the device is destroyed only after the generation has stopped.
 */
import { describe, expect, it } from 'vitest';
import { startServer } from './helpers.ts';

describe('kloop serve shutting down', () => {
  it('SIGTERM mid-stream: error event and [DONE], a 503 for the waiting request, exit 0, no device lost', { timeout: 300_000 }, async () => {
    const srv = await startServer(['--mode', 'per-op'], 240_000);
    try {
      const post = (body: object) => fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      // The kernels are compiled by the first generation: one short one first.
      expect((await post({ prompt: 'Once', max_tokens: 2 })).status).toBe(200);

      const res = await post({ prompt: 'Once upon a time', max_tokens: 500, temperature: 0, stream: true });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let text = dec.decode((await reader.read()).value);
      const waiting = post({ prompt: 'Once', max_tokens: 8 }).then(
        async (r) => ({ status: r.status, body: await r.json() }),
        (e: Error) => ({ status: 0, body: { error: e.message } }),
      );
      for (let i = 0; i < 500; i++) {
        const h = (await (await fetch(`${srv.url}/health`)).json()) as { queue: { waiting: number } };
        if (h.queue.waiting === 1) break;
        await new Promise((r) => setTimeout(r, 2));
      }
      const exit = srv.stop();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += dec.decode(value);
      }
      expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
      const events = text.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
      expect(events.at(-1).error).toMatchObject({ type: 'server_error', code: 'server_shutting_down' });
      expect(events.length).toBeGreaterThan(1);
      const w = await waiting;
      expect(w.status).toBe(503);
      expect(w.body.error).toMatchObject({ type: 'server_error', code: 'server_shutting_down' });
      expect(await exit).toBe(0);
      expect(srv.stderr()).not.toMatch(/device lost|generation failed/);
    } finally {
      await srv.stop();
    }
  });
});
