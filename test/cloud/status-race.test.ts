/**
 * Invariant 11: a cancel is never overwritten by a concurrent start, finalize or progress write. Each
 * test forces the interleaving that lost the cancel: both writes of the request inside Parse Server are
 * held after each has loaded the row (and passed beforeSave) and before it reaches the database; the
 * cancel is held first, the other write second, and they are let through in that order. On PostgreSQL a
 * row lock holds them (the database's own view of who waits for it counts them); on MongoDB a wire
 * protocol proxy between a stack of the test's own and the database holds their findAndModify commands (on a
 * real mongod: on FerretDB one Parse Server's updates take turns, so those tests are left out there).
 * Likewise a workflow's start that read a batch still receiving, and the seal of its body saved in between.
 * And writes of one request sent at once all land (FerretDB applies an update by reading and writing back).
 */
import { Client } from 'pg';
import { type Config, loadConfig, parseEndpoint } from '../../config';
import { createLogger } from '../../config/log';
import { workflowIdFor } from '../../schema/workflow';
import { createActivities } from '../../worker/activities';
import { persistOnlyProcessor } from '../../worker/processor';
import { addMemoryBatch, closeTemporal, countMemories, getBatch, master, memories, newUser, parse, temporal, waitFor } from '../support/helpers';
import { ferretDBOnlyTest, writesHeldTogetherTest } from '../support/database';
import { MongoWireProxy } from '../support/mongoWireProxy';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { stackInfo } from '../support/stackInfo';

/** Holds the writes of one request before they reach the database, and lets them through in the order held. */
interface WriteHold {
  hold(batchId: string): Promise<void>;
  /** Writes of the request being held. */
  waiting(): Promise<number>;
  release(): Promise<void>;
  close(): Promise<void>;
}

/** A row lock, taken by a session of its own (pg_stat_activity stays the same within one transaction). */
async function postgresHold(databaseURI: string): Promise<WriteHold> {
  const database = new Client({ connectionString: databaseURI });
  const locker = new Client({ connectionString: databaseURI });
  await Promise.all([database.connect(), locker.connect()]);
  return {
    async hold(batchId) {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM "BatchMemoryRequest" WHERE "objectId" = $1 FOR UPDATE', [batchId]);
    },
    async waiting() {
      const { rows } = await database.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%UPDATE "BatchMemoryRequest"%' `);
      return Number(rows[0].n);
    },
    release: async () => void (await locker.query('COMMIT')),
    close: async () => void (await Promise.all([database.end(), locker.end()])),
  };
}

/** The findAndModify commands Parse Server sends for the request, held by a proxy in front of the database. */
function mongoHold(proxy: MongoWireProxy): WriteHold {
  return {
    hold: async (batchId) => proxy.hold((command) => command.findAndModify === 'BatchMemoryRequest' && (command.query as { _id?: unknown } | undefined)?._id === batchId),
    waiting: async () => proxy.waiting,
    release: () => proxy.releaseInOrder(),
    close: () => proxy.close(),
  };
}

const onMongo = process.env.TEST_DATABASE === 'mongo';
const sharedStack = process.env.TEST_STACK;
let writes: WriteHold;
let stack: PrivateStack | undefined;
let config: Config;
let activities: ReturnType<typeof createActivities>;

beforeAll(async () => {
  if (onMongo) {
    // A stack of its own whose Parse Server reaches the shared MongoDB (a database of its own) through the proxy.
    const proxy = await MongoWireProxy.start(stackInfo().databaseURI);
    writes = mongoHold(proxy);
    const databaseURI = new URL(proxy.uri(stackInfo().databaseURI));
    databaseURI.pathname = '/status-race';
    stack = await startPrivateStack('status-race', { DATABASE_URI: databaseURI.toString() });
    // The helpers (Parse SDK, Temporal client) serve this file's stack.
    process.env.TEST_STACK = JSON.stringify(stack.info);
  } else {
    writes = await postgresHold(stackInfo().databaseURI);
  }
  config = loadConfig(stackInfo().env);
  activities = createActivities({ config, endpoint: parseEndpoint(config), processor: persistOnlyProcessor, log: createLogger('silent') });
});
afterAll(async () => {
  await writes?.close();
  await closeTemporal();
  await stack?.shutdown();
  process.env.TEST_STACK = sharedStack;
});

/** A pending (or receiving) request over the stored parts of a finished batch, with no workflow started for it. */
async function pendingBatch(status: 'pending' | 'receiving' = 'pending'): Promise<Parse.Object> {
  const P = parse();
  const { sessionToken } = await newUser('race');
  const done = await getBatch((await addMemoryBatch(sessionToken, { memories: memories(3) })).batch_id);
  const batch = new P.Object('BatchMemoryRequest');
  for (const field of ['organization', 'user', 'batchFile', 'partsKey', 'partCount', 'totalMemories']) batch.set(field, done.get(field));
  batch.set({ status, processedMemories: 0, failedMemories: 0 });
  batch.setACL(done.getACL() as Parse.ACL);
  return batch.save(null, master);
}

/**
 * Runs `first`, then `second`, each held inside Parse Server between its read of the row and its write,
 * and releases them in that order. Answers both outcomes.
 */
async function heldInOrder<A, B>(batchId: string, first: () => Promise<A>, second: () => Promise<B>): Promise<[PromiseSettledResult<A>, PromiseSettledResult<B>]> {
  await writes.hold(batchId);
  const one = first();
  one.catch(() => undefined);
  await waitFor('the first write to be held', async () => (await writes.waiting()) === 1, 30_000);
  const two = second();
  two.catch(() => undefined);
  await waitFor('the second write to be held behind the first', async () => (await writes.waiting()) === 2, 30_000);
  await writes.release();
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

describe('a cancel is never overwritten (compare-and-set on the status)', () => {
  writesHeldTogetherTest('beginBatch that read pending does not overwrite a cancel saved in between; the workflow ends with the batch cancelled', async () => {
    const batch = await pendingBatch();
    const batchId = batch.id as string;
    const [cancel, begin] = await cancelThen(batchId, () => activities.beginBatch(batchId));
    expect(cancel).toEqual({ status: 'fulfilled', value: `batch ${batchId} is being cancelled` });
    expect(begin.status === 'fulfilled' && begin.value.status).toBe('cancelled');
    expect((await getBatch(batchId)).get('status')).toBe('cancelled');
    // The workflow's start reads the cancelled status and ends without processing anything.
    const handle = await (await temporal()).workflow.start('batchMemoryWorkflow', { workflowId: workflowIdFor(batchId), taskQueue: config.TEMPORAL_TASK_QUEUE, args: [{ batchId }] });
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

  writesHeldTogetherTest('finalizeBatch that read processing does not overwrite a cancel saved in between; its retry records the cancel with exact counts', async () => {
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

  writesHeldTogetherTest('a progress write that read the batch before finalizeBatch recorded its final counts does not change them', async () => {
    const batch = await pendingBatch();
    const batchId = batch.id as string;
    batch.set('status', 'processing');
    await batch.save(null, master);
    const [finalize, progress] = await heldInOrder(
      batchId,
      () => activities.finalizeBatch({ batchId, status: 'cancelled' }),
      () => progressWrite(batchId, 2),
    );
    expect(finalize.status).toBe('fulfilled');
    expect(progress.status).toBe('fulfilled');
    const stored = await getBatch(batchId);
    expect(stored.get('status')).toBe('cancelled');
    expect(stored.get('processedMemories')).toBe(await countMemories(batchId));
  });
});

describe('a start that races the end of an upload (processed while uploading)', () => {
  writesHeldTogetherTest('beginBatch that read a batch receiving while its body was sealed with more parts answers the sealed parts and total, not those it read', async () => {
    const batch = await pendingBatch('receiving');
    const batchId = batch.id as string;
    expect({ partCount: batch.get('partCount'), total: batch.get('totalMemories') }).toEqual({ partCount: 1, total: 3 });
    // What the upload's seal writes when the workflow has not begun: its last part and total, and `pending`.
    const seal = () => {
      const sealed = new (parse().Object)('BatchMemoryRequest');
      sealed.id = batchId;
      return sealed.save({ status: 'pending', partCount: 2, totalMemories: 5 }, master);
    };
    const [sealing, begin] = await heldInOrder(batchId, seal, () => activities.beginBatch(batchId));
    expect(sealing.status).toBe('fulfilled');
    expect(begin.status === 'fulfilled' && { status: begin.value.status, partCount: begin.value.partCount, total: begin.value.total, onlyPart: begin.value.onlyPart }).toEqual({
      status: 'processing',
      partCount: 2,
      total: 5,
      onlyPart: undefined,
    });
    const stored = await getBatch(batchId);
    expect({ status: stored.get('status'), partCount: stored.get('partCount'), started: stored.get('startedAt') instanceof Date }).toEqual({ status: 'processing', partCount: 2, started: true });
    // No workflow runs it (its second part is not stored): cancelled, the batch records its end.
    await parse().Cloud.run('dashboardCancelBatch', { object: { objectId: batchId } }, master);
  });
});

describe('writes of one request at once all land', () => {
  // PostgreSQL and mongod apply each update atomically; FerretDB 1.x reads and writes back the whole document, and the
  // plugin's adapter makes one class's updates take turns (shown deterministically in test/unit/ferretdb-turns.test.ts).
  ferretDBOnlyTest('twenty count increments and a status change sent together: every increment counted, the status changed', async () => {
    // Receiving, not pending: the reconciler starts the workflow of a pending batch, which would race the test.
    // Its move to processing is the one a workflow's start makes on a batch whose upload was lost.
    const batch = await pendingBatch('receiving');
    const batchId = batch.id as string;
    // Room for the twenty counts.
    await batch.save({ totalMemories: 20 }, master);
    const start = () => {
      const started = new (parse().Object)('BatchMemoryRequest');
      started.id = batchId;
      return started.save({ status: 'processing' }, master);
    };
    const writes = [...Array.from({ length: 10 }, () => () => progressWrite(batchId, 1)), start, ...Array.from({ length: 10 }, () => () => progressWrite(batchId, 1))];
    await Promise.all(writes.map((write) => write()));
    const stored = await getBatch(batchId);
    expect({ status: stored.get('status'), processed: stored.get('processedMemories') }).toEqual({ status: 'processing', processed: 20 });
    await parse().Cloud.run('dashboardCancelBatch', { object: { objectId: batchId } }, master);
  });
});
