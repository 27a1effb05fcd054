/**
 * Undoing an import, on a private stack whose deletions remove 100 memories a statement (BATCH_DELETE_PAGE_SIZE), so
 * that a worker can be killed in the middle of one: DELETE removes exactly the memories the batch created, its chunk
 * rows and its stored files, and nothing of another batch of the same user; the count removed is the batch's
 * memories when the deletion began (one deleted by hand is skipped); a repeat changes nothing; a running batch is
 * cancelled first; only the owner (or the master key) deletes; the Dashboard's status edit deletes as well.
 */
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { BULK_WRITE_PATH } from '../../schema/batchFile';
import { deleteWorkflowIdFor, webhookWorkflowIdFor, workflowIdFor } from '../../schema/workflow';
import { memories, newGate, heldMemories, waitFor } from '../support/helpers';
import { joinOrganization } from '../support/organizations';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { startWebhookReceiver } from '../support/webhookReceiver';
import { stackApi } from '../reliability/stackApi';

const DELETE_PAGE_SIZE = 100;

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;
let temporal: Client;

beforeAll(async () => {
  stack = await startPrivateStack('batch-delete', { BATCH_DELETE_PAGE_SIZE: String(DELETE_PAGE_SIZE), BATCH_WAIT_TIMEOUT: '2s' });
  api = stackApi(stack.info);
  temporal = new Client({ connection: await Connection.connect({ address: stack.info.temporalAddress }), namespace: stack.info.namespace });
}, 240_000);

afterAll(async () => {
  await temporal?.connection.close();
  await stack?.shutdown();
});

const pointer = (className: string, objectId: string) => ({ __type: 'Pointer', className, objectId });
const where = (query: object) => encodeURIComponent(JSON.stringify(query));

/** Submits memories and answers the batch id once it has completed. */
async function completedBatch(token: string, count: number): Promise<string> {
  const submitted = await api.call('/api/v1/memory/batch', { body: { memories: memories(count, 120), wait: false }, token });
  expect(submitted.status).toBe(202);
  const batchId = submitted.body.batch_id as string;
  await waitFor(`batch ${batchId} to complete`, async () => (await api.batch(batchId)).status === 'completed', 400_000);
  return batchId;
}

/** objectIds of the Memory rows of a batch. */
async function memoryIds(batchId: string): Promise<string[]> {
  const answer = await api.call(`/parse/classes/Memory?where=${where({ batch: pointer('BatchMemoryRequest', batchId) })}&keys=objectId&limit=1000000`, { master: true });
  return (answer.body.results as { objectId: string }[]).map((row) => row.objectId).sort();
}

/** The names of the stored files of a batch: its parts and its results file (read with the master key). */
async function filesOf(batchId: string): Promise<string[]> {
  const batch = await api.batch(batchId);
  const parts = await api.call(`/parse/classes/BatchMemoryPart?where=${where({ partsKey: batch.partsKey })}&limit=1000`, { master: true });
  return [...(parts.body.results as { name: string }[]).map((part) => part.name), ...(batch.resultsFile ? [batch.resultsFile.name as string] : [])].sort();
}

async function deleted(batchId: string): Promise<Record<string, unknown>> {
  return waitFor(
    `batch ${batchId} to be deleted`,
    async () => {
      const batch = await api.batch(batchId);
      return batch.status === 'deleted' && batch;
    },
    400_000,
    100,
  );
}

test('a worker killed in the middle of deleting 10,000 memories: exactly those rows go, another batch of the same user stays', async () => {
  const owner = await api.signUp('delete-owner');
  const big = await completedBatch(owner.token, 10_000);
  const other = await completedBatch(owner.token, 40);
  const otherMemories = await memoryIds(other);
  const otherFiles = await filesOf(other);
  const otherChunks = (await api.chunkRows(other)).length;
  const bigFiles = await filesOf(big);
  expect(otherMemories).toHaveLength(40);
  expect(bigFiles.length).toBeGreaterThan(1);
  expect(await api.count('Memory', { batch: pointer('BatchMemoryRequest', big) })).toBe(10_000);

  // A memory its owner deleted by hand before the import is undone: skipped, and not counted.
  const [byHand] = await memoryIds(big);
  expect((await api.call(`/parse/classes/Memory/${byHand}`, { method: 'DELETE', master: true })).status).toBe(200);

  const answer = await api.call(`/api/v1/memory/batch/${big}`, { method: 'DELETE', token: owner.token });
  expect(answer.status).toBe(202);
  expect(answer.body).toMatchObject({ batch_id: big, status: 'deleting', deleted_memories: 9_999, total: 10_000, processed: 10_000 });

  // The kill lands while some memories are gone and some remain.
  const leftAtKill = await waitFor(
    'the deletion to be under way',
    async () => {
      const left = await api.count('Memory', { batch: pointer('BatchMemoryRequest', big) });
      return left < 9_999 && left > 0 && left;
    },
    60_000,
    5,
  );
  await stack.stop('worker', 'SIGKILL');
  const leftAfterKill = await api.count('Memory', { batch: pointer('BatchMemoryRequest', big) });
  await stack.start('worker');
  const batch = await deleted(big);
  console.log(`deleting 10,000 memories (${DELETE_PAGE_SIZE} a statement): worker killed with ${leftAtKill} left (${leftAfterKill} once it had stopped)`);
  expect(leftAfterKill).toBeGreaterThan(0);

  expect(await api.count('Memory', { batch: pointer('BatchMemoryRequest', big) })).toBe(0);
  expect(await api.chunkRows(big)).toEqual([]);
  const stored = await api.storedFiles();
  expect(bigFiles.filter((name) => stored.includes(name))).toEqual([]);
  expect(batch).toMatchObject({ deletedMemories: 9_999, totalMemories: 10_000, processedMemories: 10_000 });
  expect(batch.resultsFile).toBeUndefined();
  // The deletion's activity was retried after the kill: its workflow shows more than one attempt or a timeout.
  const history = await temporal.workflow.getHandle(deleteWorkflowIdFor(big)).fetchHistory();
  const retried = (history.events ?? []).some((event) => event.activityTaskTimedOutEventAttributes || Number(event.activityTaskStartedEventAttributes?.attempt ?? 1) > 1);
  expect(retried).toBe(true);

  // The other batch of the same user: every memory, chunk row and file as before.
  expect(await memoryIds(other)).toEqual(otherMemories);
  expect((await api.chunkRows(other)).length).toBe(otherChunks);
  expect(otherFiles.filter((name) => !stored.includes(name))).toEqual([]);
  const otherResults = await api.call(`/api/v1/memory/batch/${other}/results`, { token: owner.token });
  expect(otherResults.status).toBe(200);

  // The deleted batch answers what happened, and what is gone is refused as deleted.
  const status = await api.call(`/api/v1/memory/batch/${big}`, { token: owner.token });
  expect(status.body).toMatchObject({ status: 'deleted', deleted_memories: 9_999, deleted_at: expect.any(String) });
  expect(status.body.results_url).toBeUndefined();
  for (const route of [`/api/v1/memory/batch/${big}/results`, `/api/v1/memory/batch/${big}/retry`]) {
    const refused = await api.call(route, { token: owner.token, method: route.endsWith('retry') ? 'POST' : 'GET' });
    expect({ route, status: refused.status, code: refused.body.error?.code }).toEqual({ route, status: 410, code: 'deleted' });
  }
  const cancel = await api.call(`/api/v1/memory/batch/${big}/cancel`, { method: 'POST', token: owner.token });
  expect(cancel.body).toMatchObject({ status: 'deleted' });

  // Idempotent: a repeat answers 200 with the same count, and removes nothing more.
  const repeat = await api.call(`/api/v1/memory/batch/${big}`, { method: 'DELETE', token: owner.token });
  expect(repeat.status).toBe(200);
  expect(repeat.body).toMatchObject({ status: 'deleted', deleted_memories: 9_999 });
  expect(await memoryIds(other)).toEqual(otherMemories);
}, 600_000);

test('deleting a running batch cancels it first; the memories it wrote before stopping are removed too, and its webhook is not sent', async () => {
  const owner = await api.signUp('delete-running');
  const gate = newGate(stack.info.env.DATA_DIR);
  const hook = await startWebhookReceiver();
  try {
    const submitted = await api.call('/api/v1/memory/batch', {
      body: { memories: heldMemories(300, gate), wait: false, webhook_url: hook.url, webhook_secret: 'delete-test-webhook-secret' },
      token: owner.token,
    });
    expect(submitted.status).toBe(202);
    const batchId = submitted.body.batch_id as string;
    await waitFor('the first writes', async () => (await api.count('Memory', { batch: pointer('BatchMemoryRequest', batchId) })) > 0, 120_000);

    const answer = await api.call(`/api/v1/memory/batch/${batchId}`, { method: 'DELETE', token: owner.token });
    expect({ status: answer.status, batch: answer.body.status }).toEqual({ status: 202, batch: 'deleting' });
    const batch = await deleted(batchId);
    // The batch's own workflow was cancelled, and recorded its end before the deletion began.
    await expect(temporal.workflow.getHandle(workflowIdFor(batchId)).result()).rejects.toThrow(/cancel/i);
    expect(batch.completedAt).toBeDefined();
    expect(batch.deletedMemories).toBe(batch.processedMemories);
    expect(batch.processedMemories).toBeGreaterThan(0);
    expect(batch.processedMemories).toBeLessThan(300);
    expect(await api.count('Memory', { batch: pointer('BatchMemoryRequest', batchId) })).toBe(0);
    // Its end was recorded while it was being deleted: no delivery was started, none arrived.
    await expect(temporal.workflow.getHandle(webhookWorkflowIdFor(batchId)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(hook.deliveries).toEqual([]);
  } finally {
    gate.open();
    await hook.close();
  }
}, 300_000);

test('only the owner deletes: another user is told not found, a member of its organization forbidden, no session unauthorized', async () => {
  const owner = await api.signUp('delete-owned');
  const batchId = await completedBatch(owner.token, 20);
  const stranger = await api.signUp('delete-stranger');
  const member = await api.signUp('delete-member');
  const organizationId = (await api.call(`/parse/users/${owner.id}`, { master: true })).body.organization.objectId as string;
  await joinOrganization(api, member.id, organizationId);

  const answers = {
    stranger: (await api.call(`/api/v1/memory/batch/${batchId}`, { method: 'DELETE', token: stranger.token })).status,
    member: (await api.call(`/api/v1/memory/batch/${batchId}`, { method: 'DELETE', token: member.token })).status,
    nobody: (await api.call(`/api/v1/memory/batch/${batchId}`, { method: 'DELETE' })).status,
    // The worker's own route deletes a page of any batch's rows: the master key only.
    bulkRoute: (await api.call(`${BULK_WRITE_PATH}/Memory?batch=${batchId}&limit=10`, { method: 'DELETE', token: owner.token })).status,
  };
  expect(answers).toEqual({ stranger: 404, member: 403, nobody: 401, bulkRoute: 401 });
  expect(await api.count('Memory', { batch: pointer('BatchMemoryRequest', batchId) })).toBe(20);
  expect((await api.batch(batchId)).status).toBe('completed');
});

test('the Dashboard deletes by setting the status to deleting; a batch still running cannot be set so', async () => {
  const owner = await api.signUp('delete-dashboard');
  const batchId = await completedBatch(owner.token, 30);
  const edit = await api.call(`/parse/classes/BatchMemoryRequest/${batchId}`, { method: 'PUT', master: true, body: { status: 'deleting' } });
  expect(edit.status).toBe(200);
  const batch = await deleted(batchId);
  expect(batch.deletedMemories).toBe(30);
  expect(await api.count('Memory', { batch: pointer('BatchMemoryRequest', batchId) })).toBe(0);

  const gate = newGate(stack.info.env.DATA_DIR);
  try {
    const running = (await api.call('/api/v1/memory/batch', { body: { memories: heldMemories(200, gate), wait: false }, token: owner.token })).body.batch_id as string;
    await waitFor('the batch to run', async () => (await api.batch(running)).status === 'processing');
    const refused = await api.call(`/parse/classes/BatchMemoryRequest/${running}`, { method: 'PUT', master: true, body: { status: 'deleting' } });
    expect(refused.body.error).toMatch(/status cannot change from processing to deleting/);
  } finally {
    gate.open();
  }
});
