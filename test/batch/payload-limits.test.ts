/**
 * Invariants 1 and 2: nothing proportional to the batch crosses Temporal, and
 * history stays bounded. The test stack's dev server refuses payloads over 64 KiB.
 */
import { addMemoryBatch, closeTemporal, countMemories, duplicateMemories, getBatch, memories, newUser, temporal } from '../support/helpers';
import { PAYLOAD_LIMIT_BYTES, stackInfo } from '../support/stackInfo';
import { batchWorkflowRuns, historyFigures } from '../support/workflowHistory';

afterAll(closeTemporal);

test('a 10,000-memory batch of ~1 KB memories completes under a 64 KiB payload limit with bounded history', async () => {
  const count = Number(stackInfo().env.MAX_BATCH_SIZE);
  expect(count).toBe(10_000);
  const { sessionToken } = await newUser();
  const items = memories(count, 1000);
  const rawBytes = Buffer.byteLength(JSON.stringify(items));
  expect(rawBytes).toBeGreaterThan(10_000_000);

  const response = await addMemoryBatch(sessionToken, { memories: items, namespace: 'large' });
  expect(response).toMatchObject({ success: true, status: 'completed', total: count, processed: count, failed: 0 });
  expect(response.results.length).toBe(count);
  expect(await countMemories(response.batch_id)).toBe(count);
  expect(await duplicateMemories(response.batch_id)).toBe(0);
  const batch = await getBatch(response.batch_id);
  expect([batch.get('processedMemories'), batch.get('failedMemories')]).toEqual([count, 0]);

  const runs = await batchWorkflowRuns(await temporal(), response.batch_id);
  const partsPerRun = Number(stackInfo().env.BATCH_PARTS_PER_RUN);
  const partCount = batch.get('partCount') as number;
  expect(runs.length).toBe(Math.ceil(partCount / partsPerRun));
  const { largestPayload: largest, longestHistory: longest, payloads } = historyFigures(runs);
  process.stdout.write(`10,000 memories (${rawBytes} raw bytes): ${runs.length} runs, longest history ${longest} events, largest payload ${largest} bytes of ${payloads}\n`);
  expect(largest).toBeLessThan(PAYLOAD_LIMIT_BYTES);
  expect(largest).toBeLessThan(2048);
  // Per run: a few events per part plus a fixed overhead, whatever the batch size.
  expect(longest).toBeLessThanOrEqual(partsPerRun * 7 + 40);
  expect(runs.every((run) => run.events.length > 0)).toBe(true);
});
