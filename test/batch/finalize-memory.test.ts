/**
 * Finalizing a batch (counts recomputed from the chunk rows, the results file written) costs the worker the
 * same memory whatever the batch's size: the results stream into the file page by page. Measured as the
 * growth of the worker's RSS (from /proc) while a batch of 5,000 and one of 50,000 are finalized. On a
 * private stack, so that no other test's load moves the worker's RSS.
 */
import fs from 'node:fs';
import { gzipSync } from 'node:zlib';
import { englishText, waitFor } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { stackApi } from '../reliability/stackApi';

const MB = 1_000_000;
/** RSS growth finalizing 50,000 may exceed that of 5,000 by at most this (13 MB with the results file built in memory, against 1.6 MB for 5,000). */
const ALLOWED_EXTRA_GROWTH_MB = 5;

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;

beforeAll(async () => {
  // Parts and writes at their defaults (the shared test stack makes them small), so that 50,000 memories go fast.
  stack = await startPrivateStack('finalize-memory', { BATCH_PART_MAX_ITEMS: '1000', BATCH_WRITE_MAX_ITEMS: '100', BATCH_PARTS_PER_RUN: '200' });
  api = stackApi(stack.info);
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;
}

/**
 * Submits `count` memories as gzip NDJSON and answers how much the worker's RSS grew while the batch was
 * finalized: from the moment every chunk is recorded (what finalize reads) until the batch has completed.
 */
async function finalizeGrowth(token: string, count: number, chunkSize: number): Promise<number> {
  const lines = Array.from({ length: count }, (_, i) => `${JSON.stringify({ content: englishText(100, i) })}\n`).join('');
  const answer = await api.call(`/api/v1/memory/batch?wait=false&namespace=finalize-${count}`, {
    raw: gzipSync(lines),
    token,
    headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip' },
  });
  expect(answer.status).toBe(202);
  const batchId = answer.body.batch_id as string;
  const chunks = Math.ceil(count / chunkSize);
  const where = encodeURIComponent(JSON.stringify({ batch: { __type: 'Pointer', className: 'BatchMemoryRequest', objectId: batchId } }));
  const recorded = async () => (await api.call(`/parse/classes/BatchMemoryChunk?where=${where}&count=1&limit=0`, { master: true })).body.count as number;
  await waitFor(`every chunk of batch ${batchId} recorded`, async () => ((await recorded()) === chunks ? true : undefined), 300_000, 20);

  const { workerPid } = stack.info;
  const start = rssBytes(workerPid);
  let peak = start;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(workerPid))), 5);
  try {
    const final = await waitFor(
      `batch ${batchId} completed`,
      async () => {
        const batch = await api.batch(batchId);
        return batch.completedAt ? batch : undefined;
      },
      120_000,
      20,
    );
    expect(final).toMatchObject({ status: 'completed', processedMemories: count, failedMemories: 0 });
  } finally {
    clearInterval(sampler);
  }
  // The results file holds one line per memory.
  const results = await api.call(`/api/v1/memory/batch/${batchId}/results`, { token });
  expect(results.status).toBe(200);
  expect(String(results.body).trim().split('\n')).toHaveLength(count);
  return (peak - start) / MB;
}

test('the worker finalizes 50,000 memories within a few MB of the RSS growth of 5,000', async () => {
  const { token } = await api.signUp('finalize-memory');
  const chunkSize = 10;
  // A first batch warms the worker's code paths and heap, so that the two measured ones start alike.
  await finalizeGrowth(token, 2_000, chunkSize);
  const small = await finalizeGrowth(token, 5_000, chunkSize);
  const large = await finalizeGrowth(token, 50_000, chunkSize);
  process.stdout.write(`worker RSS growth while finalizing: 5,000 memories ${small.toFixed(1)} MB, 50,000 memories ${large.toFixed(1)} MB\n`);
  expect(large).toBeLessThanOrEqual(small + ALLOWED_EXTRA_GROWTH_MB);
}, 900_000);
