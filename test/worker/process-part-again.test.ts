/**
 * processPart run again over a part the worker already finished, in Temporal's mock activity context against
 * the real Parse Server: as a retry (attempt 2) and as the first attempt of a reset workflow. Neither writes a
 * memory twice nor adds to the request's counters again, and both answer the counts the chunk rows recorded.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config';
import { createLogger } from '../../config/log';
import type { BatchManifest, Counts } from '../../schema/workflow';
import { createActivities } from '../../worker/activities';
import { persistOnlyProcessor } from '../../worker/processor';
import { addMemoryBatch, countMemories, duplicateMemories, getBatch, memories, newUser, parse, waitFor } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';

const info = stackInfo();
const config = loadConfig(info.env);
const activities = createActivities({
  config,
  endpoint: { appId: info.appId, masterKey: info.masterKey, serverURL: info.serverURL },
  processor: persistOnlyProcessor,
  log: createLogger('error'),
});
/** Three parts; the second, a whole part of several writes, is run again. */
const COUNT = 2 * config.BATCH_PART_MAX_ITEMS + 35;

beforeAll(() => {
  parse();
});

async function finishedBatch(): Promise<string> {
  const { sessionToken } = await newUser();
  const { batch_id } = await addMemoryBatch(sessionToken, { memories: memories(COUNT, 100) });
  await waitFor(`batch ${batch_id} to complete`, async () => (await getBatch(batch_id)).get('status') === 'completed', 120_000);
  return batch_id;
}

test.each([
  ['a retry', 2],
  ['the first attempt of a reset workflow', 1],
])('%s of a finished part writes nothing again and answers the recorded counts', async (_name, attempt) => {
  const batchId = await finishedBatch();
  const manifest: BatchManifest = await new MockActivityEnvironment().run(activities.beginBatch, batchId);
  expect(manifest.partCount).toBe(3);
  const counts: Counts = await new MockActivityEnvironment({ attempt, isLocal: false }).run(activities.processPart, {
    batchId,
    part: 1,
    partsKey: manifest.partsKey,
    owner: manifest.owner,
  });
  expect(counts).toEqual({ processed: config.BATCH_PART_MAX_ITEMS, failed: 0 });
  expect(await countMemories(batchId)).toBe(COUNT);
  expect(await duplicateMemories(batchId)).toBe(0);
  const batch = await getBatch(batchId);
  expect([batch.get('processedMemories'), batch.get('failedMemories')]).toEqual([COUNT, 0]);
});
