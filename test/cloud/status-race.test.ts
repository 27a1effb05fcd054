/**
 * Invariant 11: a cancel is never overwritten by a concurrent start, finalize or progress write. Each
 * test forces the interleaving that lost the cancel: a PostgreSQL row lock holds both UPDATEs of the
 * request inside Parse Server, after each has loaded the row (and passed beforeSave) and before it
 * writes; the cancel queues first, the other write second, and the lock's release lets them run in
 * that order. Waits are on the database's own view of who waits for the lock.
 */
import { Client } from 'pg';
import { loadConfig, parseEndpoint } from '../../config';
import { createLogger } from '../../config/log';
import { workflowIdFor } from '../../schema/workflow';
import { createActivities } from '../../worker/activities';
import { persistOnlyProcessor } from '../../worker/processor';
import { addMemoryBatch, closeTemporal, countMemories, getBatch, master, memories, newUser, parse, temporal, waitFor } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';

const database = new Client({ connectionString: stackInfo().databaseURI });
/** Holds the row lock (a session of its own: pg_stat_activity stays the same within one transaction). */
const locker = new Client({ connectionString: stackInfo().databaseURI });
const config = loadConfig(stackInfo().env);
const activities = createActivities({ config, endpoint: parseEndpoint(config), processor: persistOnlyProcessor, log: createLogger('silent') });

beforeAll(() => Promise.all([database.connect(), locker.connect()]));
afterAll(async () => {
  await Promise.all([database.end(), locker.end()]);
  await closeTemporal();
});

/** A pending request over the stored parts of a finished batch, with no workflow started for it. */
async function pendingBatch(): Promise<Parse.Object> {
  const P = parse();
  const { sessionToken } = await newUser('race');
  const done = await getBatch((await addMemoryBatch(sessionToken, { memories: memories(3) })).batch_id);
  const batch = new P.Object('BatchMemoryRequest');
  for (const field of ['organization', 'user', 'batchFile', 'partsKey', 'partCount', 'totalMemories']) batch.set(field, done.get(field));
  batch.set({ status: 'pending', processedMemories: 0, failedMemories: 0 });
  batch.setACL(done.getACL() as Parse.ACL);
  return batch.save(null, master);
}

/** UPDATEs of the request table waiting for a row lock. */
async function waitingWrites(): Promise<number> {
  const { rows } = await database.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%UPDATE "BatchMemoryRequest"%' `,
  );
  return Number(rows[0].n);
}

/**
 * Runs `first`, then `second`, each held inside Parse Server between its read of the row and its write,
 * and releases them in that order. Answers both outcomes.
 */
async function heldInOrder<A, B>(batchId: string, first: () => Promise<A>, second: () => Promise<B>): Promise<[PromiseSettledResult<A>, PromiseSettledResult<B>]> {
  await locker.query('BEGIN');
  await locker.query('SELECT 1 FROM "BatchMemoryRequest" WHERE "objectId" = $1 FOR UPDATE', [batchId]);
  const one = first();
  one.catch(() => undefined);
  await waitFor('the first write to wait for the row', async () => (await waitingWrites()) === 1, 30_000);
  const two = second();
  two.catch(() => undefined);
  await waitFor('the second write to wait behind the first', async () => (await waitingWrites()) === 2, 30_000);
  await locker.query('COMMIT');
  return Promise.allSettled([one, two]);
}

/** The Dashboard's Cancel batch script, then `other`, in the order that lost the cancel. */
function cancelThen<T>(batchId: string, other: () => Promise<T>): Promise<[PromiseSettledResult<string>, PromiseSettledResult<T>]> {
  return heldInOrder(batchId, () => parse().Cloud.run('dashboardCancelBatch', { object: { objectId: batchId } }, master) as Promise<string>, other);
}

/** What a part's counts flush sends: increments of the counts on a pointer to the request. */
function progressWrite(batchId: string, processed: number): Promise<Parse.Object> {
  const counts = new (parse().Object)('BatchMemoryRequest');
  counts.id = batchId;
  counts.increment('processedMemories', processed);
  counts.increment('failedMemories', 0);
  return counts.save(null, master);
}

describe('a cancel is never overwritten (compare-and-set on the status; PostgreSQL-only: a row lock holds the writes)', () => {
  test('beginBatch that read pending does not overwrite a cancel saved in between; the workflow ends with the batch cancelled', async () => {
    const batch = await pendingBatch();
    const batchId = batch.id as string;
    const [cancel, begin] = await cancelThen(batchId, () => activities.beginBatch(batchId));
    expect(cancel).toEqual({ status: 'fulfilled', value: `batch ${batchId} is being cancelled` });
    expect(begin.status === 'fulfilled' && begin.value.status).toBe('cancelled');
    expect((await getBatch(batchId)).get('status')).toBe('cancelled');
    // The workflow's start reads the cancelled status and ends without processing anything.
    const handle = await (await temporal()).workflow.start('batchMemoryWorkflow', { workflowId: workflowIdFor(batchId), taskQueue: stackInfo().taskQueue, args: [{ batchId }] });
    await handle.result();
    const finished = await waitFor('the end to be recorded', async () => {
      const b = await getBatch(batchId);
      return b.get('completedAt') ? b : undefined;
    });
    expect(finished.get('status')).toBe('cancelled');
    expect(finished.get('startedAt')).toBeUndefined();
    expect(finished.get('processedMemories')).toBe(await countMemories(batchId));
    expect(await countMemories(batchId)).toBe(0);
  });

  test('finalizeBatch that read processing does not overwrite a cancel saved in between; its retry records the cancel with exact counts', async () => {
    const batch = await pendingBatch();
    const batchId = batch.id as string;
    batch.set('status', 'processing');
    await batch.save(null, master);
    const [cancel, finalize] = await cancelThen(batchId, () => activities.finalizeBatch({ batchId, status: 'completed' }));
    expect(cancel.status).toBe('fulfilled');
    expect(finalize).toMatchObject({ status: 'rejected', reason: { message: 'status cannot change from cancelled to completed' } });
    expect((await getBatch(batchId)).get('status')).toBe('cancelled');
    // Temporal retries the activity: it reads the cancel and keeps it.
    await activities.finalizeBatch({ batchId, status: 'completed' });
    const finished = await getBatch(batchId);
    expect(finished.get('status')).toBe('cancelled');
    expect(finished.get('completedAt')).toBeInstanceOf(Date);
    expect(finished.get('processedMemories')).toBe(await countMemories(batchId));
  });

  test('a progress write (counts a part flushes) that read processing leaves a cancel saved in between in place', async () => {
    const batch = await pendingBatch();
    const batchId = batch.id as string;
    batch.set('status', 'processing');
    await batch.save(null, master);
    const [cancel, progress] = await cancelThen(batchId, () => progressWrite(batchId, 0));
    expect(cancel.status).toBe('fulfilled');
    expect(progress.status).toBe('fulfilled');
    const stored = await getBatch(batchId);
    expect(stored.get('status')).toBe('cancelled');
    expect(stored.get('processedMemories')).toBe(await countMemories(batchId));
  });

  test('a progress write that read the batch before finalizeBatch recorded its final counts does not change them', async () => {
    const batch = await pendingBatch();
    const batchId = batch.id as string;
    batch.set('status', 'processing');
    await batch.save(null, master);
    const [finalize, progress] = await heldInOrder(batchId, () => activities.finalizeBatch({ batchId, status: 'cancelled' }), () => progressWrite(batchId, 2));
    expect(finalize.status).toBe('fulfilled');
    expect(progress.status).toBe('fulfilled');
    const stored = await getBatch(batchId);
    expect(stored.get('status')).toBe('cancelled');
    expect(stored.get('processedMemories')).toBe(await countMemories(batchId));
  });
});
