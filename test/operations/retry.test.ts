/** Retrying the items a finished batch did not store: Cloud Function, REST route and the Dashboard script. */
import { addMemoryBatch, countMemories, getBatch, memories, newUser, parse, waitFor } from '../support/helpers';
import { openApiProblems, rest } from '../support/rest';

/** 30 memories of which items 3 and 17 are refused by the test processor. */
function mixedBatch() {
  return memories(30, 120, (index) => (index === 3 || index === 17 ? { metadata: { index, test_reject: 'refused by the processor' } } : {}));
}

async function completed(batchId: string): Promise<Parse.Object> {
  return waitFor('the batch to finish', async () => {
    const batch = await getBatch(batchId);
    return ['completed', 'failed', 'cancelled'].includes(batch.get('status')) ? batch : undefined;
  });
}

test('retryMemoryBatch creates a batch of exactly the unstored items, for the same owner', async () => {
  const owner = await newUser();
  const first = await addMemoryBatch(owner.sessionToken, { memories: mixedBatch() });
  expect(first).toMatchObject({ status: 'completed', processed: 28, failed: 2 });

  const retried = (await parse().Cloud.run('retryMemoryBatch', { batch_id: first.batch_id }, { sessionToken: owner.sessionToken })) as { batch_id: string; total: number };
  expect(retried.batch_id).not.toBe(first.batch_id);
  expect(retried.total).toBe(2);
  const batch = await completed(retried.batch_id);
  expect(batch.get('retryOf').id).toBe(first.batch_id);
  expect(batch.get('user').id).toBe(owner.id);
  // The same items, in order; the processor refuses them again, which is what the results show.
  const data = (await parse().Cloud.run('getMemoryBatchData', { batch_id: retried.batch_id }, { sessionToken: owner.sessionToken })) as { memories: { metadata: { index: number } }[] };
  expect(data.memories.map((m) => m.metadata.index)).toEqual([3, 17]);
  expect(batch.get('failedMemories')).toBe(2);
  expect(await countMemories(retried.batch_id)).toBe(0);
  const status = await rest(`/memory/batch/${retried.batch_id}`, { token: owner.sessionToken });
  expect(status.body.retry_of).toBe(first.batch_id);
  expect(await openApiProblems('BatchStatusResponse', status.body)).toEqual([]);
});

test('POST /memory/batch/:id/retry: 202 for the owner, 409 when nothing failed, 404 for another user', async () => {
  const owner = await newUser();
  const stranger = await newUser();
  const first = await addMemoryBatch(owner.sessionToken, { memories: mixedBatch() });
  const clean = await addMemoryBatch(owner.sessionToken, { memories: memories(3) });

  const accepted = await rest(`/memory/batch/${first.batch_id}/retry`, { method: 'POST', token: owner.sessionToken });
  expect(accepted.status).toBe(202);
  expect(accepted.headers.get('location')).toBe(`/api/v1/memory/batch/${accepted.body.batch_id}`);
  expect(accepted.body).toMatchObject({ total: 2 });
  expect(await openApiProblems('BatchMemoryResponse', accepted.body)).toEqual([]);

  const nothing = await rest(`/memory/batch/${clean.batch_id}/retry`, { method: 'POST', token: owner.sessionToken });
  expect(nothing.status).toBe(409);
  expect(nothing.body.error.message).toMatch(/has no failed items to retry/);
  const other = await rest(`/memory/batch/${first.batch_id}/retry`, { method: 'POST', token: stranger.sessionToken });
  expect(other.status).toBe(404);
});

test('Dashboard scripts: "Retry failed items" and "Cancel batch" run with the master key only', async () => {
  const P = parse();
  const owner = await newUser();
  const first = await addMemoryBatch(owner.sessionToken, { memories: mixedBatch() });
  const object = { __type: 'Object', className: 'BatchMemoryRequest', objectId: first.batch_id };
  await expect(P.Cloud.run('dashboardRetryFailedItems', { object }, { sessionToken: owner.sessionToken })).rejects.toThrow(/[Mm]aster/);
  const message = (await P.Cloud.run('dashboardRetryFailedItems', { object }, { useMasterKey: true })) as string;
  expect(message).toMatch(new RegExp(`^batch \\w+ retries 2 items of batch ${first.batch_id}$`));

  const running = await addMemoryBatch(owner.sessionToken, { memories: memories(800, 300), wait: false });
  const cancelled = (await P.Cloud.run('dashboardCancelBatch', { object: { ...object, objectId: running.batch_id } }, { useMasterKey: true })) as string;
  expect(cancelled).toBe(`batch ${running.batch_id} is being cancelled`);
  const batch = await completed(running.batch_id);
  expect(batch.get('status')).toBe('cancelled');
  const again = (await P.Cloud.run('dashboardCancelBatch', { object: { ...object, objectId: running.batch_id } }, { useMasterKey: true })) as string;
  expect(again).toBe(`batch ${running.batch_id} has already finished (cancelled)`);
});
