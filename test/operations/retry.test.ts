/** Retrying the items a finished batch did not store: Cloud Function, REST route and the Dashboard script. */
import { addMemoryBatch, countMemories, getBatch, memories, newUser, parse, waitFor } from '../support/helpers';
import { openApiProblems, postJson, rest } from '../support/rest';
import { stackInfo } from '../support/stackInfo';
import { stackApi } from '../reliability/stackApi';

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

test('Dashboard scripts: "Retry failed items", "Cancel batch" and "Delete batch" run with the master key only; deleteMemoryBatch deletes for the owner', async () => {
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

  // "Delete batch" undoes the cancelled import; deleteMemoryBatch does the same for the owner.
  await expect(P.Cloud.run('dashboardDeleteBatch', { object: { ...object, objectId: running.batch_id } }, { sessionToken: owner.sessionToken })).rejects.toThrow(/[Mm]aster/);
  const deleting = (await P.Cloud.run('dashboardDeleteBatch', { object: { ...object, objectId: running.batch_id } }, { useMasterKey: true })) as string;
  expect(deleting).toBe(`batch ${running.batch_id} is being deleted`);
  const owned = (await P.Cloud.run('deleteMemoryBatch', { batch_id: first.batch_id }, { sessionToken: owner.sessionToken })) as { status: string; deleted_memories: number };
  expect(owned).toMatchObject({ status: 'deleting', deleted_memories: first.processed });
  for (const batchId of [running.batch_id, first.batch_id]) {
    await waitFor(`batch ${batchId} to be deleted`, async () => (await getBatch(batchId)).get('status') === 'deleted');
    expect(await countMemories(batchId)).toBe(0);
  }
  const deletedAgain = (await P.Cloud.run('dashboardDeleteBatch', { object: { ...object, objectId: running.batch_id } }, { useMasterKey: true })) as string;
  expect(deletedAgain).toBe(`batch ${running.batch_id} was already deleted (${batch.get('processedMemories')} memories)`);
});

const api = stackApi(stackInfo());
const pointer = (className: string, objectId: string) => ({ __type: 'Pointer', className, objectId });

test('retry asked twice at once and twice more after: one retry batch, answered to every call', async () => {
  const owner = await newUser();
  const first = await addMemoryBatch(owner.sessionToken, { memories: mixedBatch() });
  const retry = () => rest(`/memory/batch/${first.batch_id}/retry`, { method: 'POST', token: owner.sessionToken });
  const together = await Promise.all([retry(), retry()]);
  const cloud = (await parse().Cloud.run('retryMemoryBatch', { batch_id: first.batch_id }, { sessionToken: owner.sessionToken })) as { batch_id: string };
  const after = await retry();
  const ids = [...together.map((answer) => answer.body.batch_id), cloud.batch_id, after.body.batch_id];
  expect(together.map((answer) => answer.status)).toEqual([202, 202]);
  expect(new Set(ids).size).toBe(1);
  expect(await api.count('BatchMemoryRequest', { retryOf: pointer('BatchMemoryRequest', first.batch_id) })).toBe(1);
  await completed(ids[0]);
});

test('retry with an Idempotency-Key: the same retry batch for a new key or a repeat; a key a submit used is 409, naming the key', async () => {
  const owner = await newUser();
  const key = `retry-key-${Math.random().toString(36).slice(2)}`;
  const first = await addMemoryBatch(owner.sessionToken, { memories: mixedBatch() });
  const retry = (headers: Record<string, string>) => rest(`/memory/batch/${first.batch_id}/retry`, { method: 'POST', token: owner.sessionToken, headers });
  const answers = [await retry({ 'Idempotency-Key': key }), await retry({ 'Idempotency-Key': key }), await retry({ 'Idempotency-Key': `${key}-other` })];
  expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
  expect(new Set(answers.map((answer) => answer.body.batch_id)).size).toBe(1);

  const submitted = await postJson('/memory/batch?wait=false', { memories: memories(2) }, { token: owner.sessionToken, headers: { 'Idempotency-Key': `${key}-submit` } });
  expect(submitted.status).toBe(202);
  const reused = await retry({ 'Idempotency-Key': `${key}-submit` });
  expect({ status: reused.status, code: reused.body.error?.code, fields: reused.body.error?.details?.map((detail: { field: string }) => detail.field) }).toEqual({
    status: 409,
    code: 'conflict',
    fields: ['idempotency_key'],
  });
  expect(await api.count('BatchMemoryRequest', { retryOf: pointer('BatchMemoryRequest', first.batch_id) })).toBe(1);
  await completed(answers[0].body.batch_id);
});

test('a retry lands in the organization the owner belongs to now: one who left the batch organization adds nothing to it', async () => {
  const colleague = await api.signUp('retry-colleague');
  const leaver = await api.signUp('retry-leaver');
  // The colleague's organization, which the leaver joins the documented way: its role, and the user's pointer.
  await addMemoryBatch(colleague.token, { memories: memories(1) });
  const shared = ((await api.call(`/parse/users/${colleague.id}`, { master: true })).body.organization as { objectId: string }).objectId;
  const role = (await api.call(`/parse/roles?where=${encodeURIComponent(JSON.stringify({ name: `org_${shared}` }))}`, { master: true })).body.results[0].objectId as string;
  const membership = (op: 'AddRelation' | 'RemoveRelation') => api.call(`/parse/roles/${role}`, { method: 'PUT', master: true, body: { users: { __op: op, objects: [pointer('_User', leaver.id)] } } });
  expect((await membership('AddRelation')).status).toBe(200);
  expect((await api.call(`/parse/users/${leaver.id}`, { method: 'PUT', master: true, body: { organization: pointer('Organization', shared) } })).status).toBe(200);
  const first = await addMemoryBatch(leaver.token, { memories: mixedBatch() });
  expect(((await api.batch(first.batch_id)).organization as { objectId: string }).objectId).toBe(shared);

  // The operator removes the leaver from the organization.
  expect((await membership('RemoveRelation')).status).toBe(200);
  expect((await api.call(`/parse/users/${leaver.id}`, { method: 'PUT', master: true, body: { organization: { __op: 'Delete' } } })).status).toBe(200);
  const inShared = () => api.count('BatchMemoryRequest', { organization: pointer('Organization', shared) });
  const before = await inShared();
  const retried = await rest(`/memory/batch/${first.batch_id}/retry`, { method: 'POST', token: leaver.token });
  expect(retried.status).toBe(202);
  await completed(retried.body.batch_id);
  expect(((await api.batch(retried.body.batch_id)).organization as { objectId: string }).objectId).not.toBe(shared);
  expect(await inShared()).toBe(before);
  // The colleague, still a member, sees no new batch.
  const listed = await rest('/memory/batch?limit=100', { token: colleague.token });
  expect(listed.body.batches.map((batch: { batch_id: string }) => batch.batch_id)).not.toContain(retried.body.batch_id);
});
