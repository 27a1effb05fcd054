/**
 * A 100,000-memory gzip NDJSON upload streams into storage: exact counts, and the server's memory stays flat
 * while receiving. On a private stack: its parts in flight would look orphaned to the shared stack's checks,
 * and other tests' load would blur its RSS.
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { loadConfig } from '../../config';
import { englishText, waitFor } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { stackApi } from '../reliability/stackApi';

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;

beforeAll(async () => {
  // Parts and writes of a deployment's default sizes, not the test stack's small ones (which make multi-part
  // batches of a few hundred memories): this batch is processed as a deployment would process it.
  const defaults = loadConfig({});
  stack = await startPrivateStack('ndjson-large', { BATCH_PART_MAX_ITEMS: String(defaults.BATCH_PART_MAX_ITEMS), BATCH_WRITE_MAX_ITEMS: String(defaults.BATCH_WRITE_MAX_ITEMS) });
  api = stackApi(stack.info);
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
}

test(
  '100,000 memories as gzip NDJSON: streamed in with < 100 MB server RSS growth, processed with exact counts',
  async () => {
    const count = 100_000;
    const { token: sessionToken } = await api.signUp('ndjson-large');
    const lines = Array.from({ length: count }, (_, i) => `${JSON.stringify({ content: englishText(300, i), metadata: { line: i } })}\n`);
    const body = gzipSync(lines.join(''));
    const rawBytes = lines.reduce((sum, line) => sum + line.length, 0);
    lines.length = 0;

    const { serverPid } = stack.info;
    const baseline = rssBytes(serverPid);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(serverPid))), 25);
    const startedAt = Date.now();
    let response: Response;
    try {
      // Sent in 64 KiB pieces, as a client streaming a file would.
      const pieces = Readable.from(
        (function* () {
          for (let at = 0; at < body.length; at += 65536) yield body.subarray(at, at + 65536);
        })(),
      );
      response = await fetch(`${stack.info.serverURL.replace(/\/parse$/, '')}/api/v1/memory/batch?wait=false&namespace=ndjson-100k`, {
        method: 'POST',
        headers: { 'X-Parse-Session-Token': sessionToken, 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip' },
        body: Readable.toWeb(pieces) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
    } finally {
      clearInterval(sampler);
    }
    const received = await response.json();
    const growth = peak - baseline;
    process.stdout.write(
      `NDJSON 100k: ${rawBytes} raw / ${body.length} gzip bytes stored in ${Date.now() - startedAt} ms; server RSS ${Math.round(baseline / 2 ** 20)} MB -> peak ${Math.round(peak / 2 ** 20)} MB (+${Math.round(growth / 2 ** 20)} MB)\n`,
    );
    expect(response.status).toBe(202);
    expect(received).toMatchObject({ total: count });
    expect(growth).toBeLessThan(100 * 1024 * 1024);

    const done = await waitFor(
      'the 100,000-memory batch to complete',
      async () => {
        const status = await api.call(`/api/v1/memory/batch/${received.batch_id}`, { token: sessionToken });
        return status.body.status === 'completed' ? status.body : undefined;
      },
      15 * 60_000,
      2000,
    );
    process.stdout.write(`NDJSON 100k: processed in ${Date.now() - startedAt} ms\n`);
    expect(done).toMatchObject({ total: count, processed: count, failed: 0 });
    expect(await api.memoryRows(received.batch_id)).toEqual({ rows: count, duplicates: 0 });
  },
  20 * 60_000,
);
