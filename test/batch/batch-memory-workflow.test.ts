/** The workflow cases of the requirements (docs/requirements.md §6), end to end: Cloud Function → Parse Files → Temporal → worker → Memory rows. */
import { addMemoryBatch, closeTemporal, countMemories, duplicateMemories, getBatch, master, memories, newUser, parse, preparedItems, repeatedIndexes, temporal } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';
import { batchMemoryResponseSchema } from '../../schema/memory';
import { workflowIdFor } from '../../schema/workflow';
import { progressQuery } from '../../worker/workflows';

afterAll(closeTemporal);

describe('batch memory workflow', () => {
  test('processes a batch: every memory persisted with its pointers, counts exact', async () => {
    const { sessionToken, id: userId } = await newUser();
    const response = await addMemoryBatch(sessionToken, { memories: memories(25, 300, (i) => ({ tags: ['prd', `t${i % 3}`], source: 'import' })), namespace: 'historical-import' });
    expect(batchMemoryResponseSchema.parse(response)).toBeTruthy();
    expect(response).toMatchObject({ success: true, status: 'completed', total: 25, processed: 25, failed: 0, errors: null });
    expect(response.results.map((r) => r.index)).toEqual([...Array(25).keys()]);
    expect(await countMemories(response.batch_id)).toBe(25);

    const P = parse();
    const memory = await new P.Query('Memory').equalTo('objectId', response.results[7].memory_id).include('namespace').first(master);
    expect(memory?.get('batchIndex')).toBe(7);
    expect(memory?.get('tags')).toEqual(['prd', 't1']);
    expect(memory?.get('user').id).toBe(userId);
    expect(memory?.get('namespace').get('name')).toBe('historical-import');
    expect(memory?.getACL()?.getReadAccess(userId)).toBe(true);
    expect(memory?.getACL()?.getPublicReadAccess()).toBe(false);

    const batch = await getBatch(response.batch_id);
    expect(batch.get('status')).toBe('completed');
    expect(batch.get('processedMemories')).toBe(25);
    expect(batch.get('workflowId')).toBe(workflowIdFor(response.batch_id));
  });

  test('partial failures: failed count, per-item errors, the rest persisted', async () => {
    const { sessionToken } = await newUser();
    const items = memories(30, 200, (i) => (i % 7 === 3 ? { metadata: { test_reject: `item ${i} has no usable text` } } : {}));
    const rejected = items.map((_, i) => i).filter((i) => i % 7 === 3);
    const response = await addMemoryBatch(sessionToken, { memories: items });
    expect(response).toMatchObject({ success: false, status: 'completed', total: 30, processed: 30 - rejected.length, failed: rejected.length });
    expect(response.results.filter((r) => !r.success).map((r) => r.index)).toEqual(rejected);
    expect(response.results[3]).toEqual({ index: 3, success: false, error: 'item 3 has no usable text', code: 'rejected' });
    expect(response.errors).toContain('memories[3]: item 3 has no usable text');
    expect(await countMemories(response.batch_id)).toBe(30 - rejected.length);
  });

  // The test stack's parts hold 100 memories: 40 make one part (run as a local activity), 140 make two.
  test.each([
    ['one part, a local activity retried by the worker', 40],
    ['two parts, activities retried through Temporal', 140],
  ])('survives retries of a part (%s): a failure after a chunk was written duplicates nothing', async (_kind, count) => {
    const { sessionToken } = await newUser();
    // Writes of 30 (the test stack's BATCH_WRITE_MAX_ITEMS): the failure is in the second write, chunk 30.
    const write = Number(stackInfo().env.BATCH_WRITE_MAX_ITEMS);
    const items = memories(count, 200, (i) => ({ metadata: { index: i, test_record: true, ...(i === 34 ? { test_fail_after_persist: true } : {}) } }));
    const response = await addMemoryBatch(sessionToken, { memories: items });
    expect(response).toMatchObject({ success: true, status: 'completed', total: count, processed: count, failed: 0 });
    expect(await countMemories(response.batch_id)).toBe(count);
    expect(await duplicateMemories(response.batch_id)).toBe(0);
    const P = parse();
    const chunk = await new P.Query('BatchMemoryChunk').equalTo('key', `${response.batch_id}:30`).first(master);
    expect(chunk?.get('attempt')).toBe(2);
    // What the processor prepared (chunk rows are insert-only, so they cannot show a redone chunk): every
    // item, the first write's once only; the retry began at the failed write, so exactly that write's
    // items were prepared twice.
    const prepared = preparedItems(response.batch_id);
    const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
    expect([...new Set(prepared.map((p) => p.i))].sort((a, b) => a - b)).toEqual(range(0, count));
    expect(repeatedIndexes(prepared)).toEqual(range(write, Math.min(count, 2 * write)));
    expect(prepared.filter((p) => p.a > 1).map((p) => p.i)).toEqual(range(write, Math.min(count, 100)));
    const events = (await (await temporal()).workflow.getHandle(workflowIdFor(response.batch_id)).fetchHistory()).events ?? [];
    const partActivities = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'processPart');
    if (count <= 100) {
      // beginBatch, processPart and finalizeBatch are markers of one workflow task; no activity task at all.
      expect(partActivities).toHaveLength(0);
      expect(events.filter((e) => e.markerRecordedEventAttributes)).toHaveLength(3);
    } else {
      expect(partActivities).toHaveLength(2);
      expect(events.filter((e) => e.activityTaskFailedEventAttributes || e.activityTaskStartedEventAttributes?.attempt === 2).length).toBeGreaterThan(0);
    }
  });

  test.each([150, 1000])('Parse.Cloud.run(addMemoryBatch) with %i memories returns every result', async (count) => {
    const { sessionToken } = await newUser();
    const response = await addMemoryBatch(sessionToken, { memories: memories(count, 400), namespace: 'bulk' });
    expect(response.success).toBe(true);
    expect(response.results.length).toBe(count);
    expect(response.results.every((r, i) => r.index === i && r.success && typeof r.memory_id === 'string')).toBe(true);
    expect(await countMemories(response.batch_id)).toBe(count);
    const progress = await (await temporal()).workflow.getHandle(workflowIdFor(response.batch_id)).query(progressQuery);
    expect(progress).toEqual({ batchId: response.batch_id, total: count, partCount: Math.ceil(count / 100), partsDone: Math.ceil(count / 100), processed: count, failed: 0, status: 'completed' });
  });
});
