/**
 * A large batch's per-item results, read in pieces: `GET …/:id/results?status=&after=&limit=` streams the items asked
 * for from the stored file without holding it (Parse Server's RSS measured from /proc while 100,000 results stream
 * through the filter), and an answer carries at most INLINE_RESULTS_MAX results inline, pointing to the download
 * for the rest. On a private stack with parts at their defaults, so that 100,000 memories go fast and no other
 * test's load moves the server's RSS.
 */
import fs from 'node:fs';
import { gzipSync } from 'node:zlib';
import { INLINE_RESULTS_MAX, type BatchMemoryResponse, type MemoryProcessingResult } from '../../schema/memory';
import { stackApi } from '../reliability/stackApi';
import { waitFor } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';

const TOTAL = 100_000;
/** Every 97th memory is refused by the test processor. */
const refused = (index: number) => index % 97 === 0;
/** Filtered reads of every result at once: each would hold the whole file if results were read whole before filtering. */
const READS_AT_ONCE = 4;
/**
 * Parse Server's RSS growth while READS_AT_ONCE reads stream every stored item's result through the filter may be at
 * most this. One read measured 0 to 8.5 MB streamed (GC timing varies it) against 13.8 MB read whole: too close.
 * Four at once: 2.3 (FerretDB) and 19.4 MB (PostgreSQL) streamed; 42.7 MB with the results file read whole before
 * filtering.
 */
const ALLOWED_GROWTH_MB = 30;

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;
let token: string;
let batchId: string;

beforeAll(async () => {
  stack = await startPrivateStack('results-ranges', { BATCH_PART_MAX_ITEMS: '1000', BATCH_WRITE_MAX_ITEMS: '100', BATCH_PARTS_PER_RUN: '200' });
  api = stackApi(stack.info);
  ({ token } = await api.signUp('results-ranges'));
  const lines = Array.from({ length: TOTAL }, (_, i) => `${JSON.stringify({ content: `memory ${i}`, ...(refused(i) ? { metadata: { test_reject: 'refused' } } : {}) })}\n`).join('');
  const answer = await api.call('/api/v1/memory/batch?wait=false', { raw: gzipSync(lines), token, headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip' } });
  expect(answer.status).toBe(202);
  batchId = answer.body.batch_id as string;
  await waitFor(`batch ${batchId} to complete`, async () => ((await api.batch(batchId)).status === 'completed' ? true : undefined), 300_000, 200);
}, 420_000);

afterAll(async () => {
  await stack?.shutdown();
});

/** The results a query streams, parsed, and the HTTP status. */
async function results(query: string): Promise<{ status: number; items: MemoryProcessingResult[] }> {
  const answer = await api.call(`/api/v1/memory/batch/${batchId}/results${query}`, { token });
  const text = typeof answer.body === 'string' ? answer.body : `${JSON.stringify(answer.body)}\n`;
  return {
    status: answer.status,
    items:
      answer.status === 200
        ? text
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as MemoryProcessingResult)
        : [],
  };
}

const indexes = (items: MemoryProcessingResult[]) => items.map((item) => item.index);

test('status=failed is the errors-only download: exactly the refused items, in order, each with its error', async () => {
  const failed = await results('?status=failed');
  const expected = Array.from({ length: TOTAL }, (_, i) => i).filter(refused);
  expect(failed.status).toBe(200);
  expect(indexes(failed.items)).toEqual(expected);
  expect(failed.items.every((item) => !item.success && item.code === 'rejected' && item.error)).toBe(true);
});

test('after and limit range the results, alone and with status', async () => {
  expect(indexes((await results('?after=49999&limit=5')).items)).toEqual([50000, 50001, 50002, 50003, 50004]);
  // 50,052 = 97 × 516 is refused: skipped by status=succeeded.
  const succeeded = await results('?status=succeeded&after=50050&limit=3');
  expect(indexes(succeeded.items)).toEqual([50051, 50053, 50054]);
  expect(succeeded.items.every((item) => item.success && item.memory_id)).toBe(true);
  expect((await results(`?after=${TOTAL - 1}`)).items).toEqual([]);
  expect(indexes((await results('?limit=2')).items)).toEqual([0, 1]);
  const bad = await api.call(`/api/v1/memory/batch/${batchId}/results?status=done&after=-1`, { token });
  expect({ status: bad.status, fields: bad.body.error.details.map((detail: { path: string }) => detail.path) }).toEqual({ status: 400, fields: ['status', 'after'] });
});

test(`${READS_AT_ONCE} reads at once streaming ${TOTAL.toLocaleString('en-US')} results through the filter grow Parse Server's RSS by at most ${ALLOWED_GROWTH_MB} MB`, async () => {
  const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${stack.info.serverPid}/status`, 'utf8'))?.[1]) / 1024;
  // A first read warms the route's code paths.
  await results('?status=succeeded&limit=1000');
  const start = rss();
  let peak = start;
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 5);
  let reads: MemoryProcessingResult[][];
  try {
    reads = (await Promise.all(Array.from({ length: READS_AT_ONCE }, () => results('?status=succeeded')))).map((read) => read.items);
  } finally {
    clearInterval(sampler);
  }
  process.stdout.write(`Parse Server RSS while ${READS_AT_ONCE} reads streamed ${reads[0].length} filtered results each: ${start.toFixed(1)} MB, peak ${peak.toFixed(1)} MB\n`);
  for (const streamed of reads) expect(streamed.length).toBe(TOTAL - Array.from({ length: TOTAL }, (_, i) => i).filter(refused).length);
  expect(peak - start).toBeLessThanOrEqual(ALLOWED_GROWTH_MB);
});

test(`an answer carries the first ${INLINE_RESULTS_MAX} results and points to the download for the rest`, async () => {
  const answer = await api.call('/parse/functions/getMemoryBatch', { token, body: { batch_id: batchId } });
  const batch = answer.body.result as BatchMemoryResponse;
  expect({ total: batch.total, inline: batch.results.length, first: batch.results[0]?.index, results_url: batch.results_url }).toEqual({
    total: TOTAL,
    inline: INLINE_RESULTS_MAX,
    first: 0,
    results_url: `/api/v1/memory/batch/${batchId}/results`,
  });
  // A batch within the bound has them all inline, and no pointer.
  const small = await api.call('/parse/functions/addMemoryBatch', { token, body: { memories: [{ content: 'one' }, { content: 'two' }] } });
  expect({ inline: small.body.result.results.length, results_url: small.body.result.results_url }).toEqual({ inline: 2, results_url: undefined });
});
