/**
 * Faults on a private stack: the worker killed with SIGKILL three times, Parse Server and the
 * Temporal dev server restarted, PostgreSQL connections terminated, each in the middle of a batch.
 * Every batch completes with exact counts, nothing lost and nothing written twice.
 */
import { Client } from 'pg';
import { waitFor } from '../../scripts/processes';
import { memories } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { recordScenario, stackApi } from './stackApi';

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;
let user: { id: string; token: string };

beforeAll(async () => {
  stack = await startPrivateStack('faults', { MAX_BATCH_SIZE: '10000', RECONCILE_INTERVAL: '2s' });
  api = stackApi(stack.info);
  user = await api.signUp('faults');
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

/** Items take 4 ms each to prepare (as an embedding call would take longer), so that every fault lands in a running batch. */
async function submit(count: number, slowMs = 4): Promise<string> {
  const items = memories(count, 150, (index) => ({ metadata: { index, test_slow_ms: slowMs } }));
  const answer = await api.call('/api/v1/memory/batch?wait=false', { body: { memories: items }, token: user.token });
  expect(answer.status).toBe(202);
  return answer.body.batch_id;
}

/** Waits until the batch has passed `atLeast` memories and checks that it still runs: the fault that follows lands in it. */
async function untilProcessed(batchId: string, atLeast: number): Promise<void> {
  const batch = await waitFor(
    `batch ${batchId} to pass ${atLeast} memories`,
    async () => {
      const current = await api.batch(batchId);
      return (current.processedMemories ?? 0) >= atLeast ? current : undefined;
    },
    300_000,
    100,
  );
  expect(batch.status).toBe('processing');
}

/** Waits until some part has recorded chunks but not all ten (the test stack's parts hold 100 memories): a kill then lands inside it. */
async function untilPartHalfDone(batchId: string): Promise<void> {
  await waitFor(
    `a part of batch ${batchId} to be half done`,
    async () => {
      const perPart = new Map<number, number>();
      for (const { part } of await api.chunkRows(batchId)) perPart.set(part, (perPart.get(part) ?? 0) + 1);
      return [...perPart.values()].some((chunks) => chunks < 10);
    },
    300_000,
    50,
  );
}

/** Waits until the batch has recorded at least `chunks` chunk rows. */
async function untilProcessedChunks(batchId: string, chunks: number): Promise<void> {
  await waitFor(`batch ${batchId} to record ${chunks} chunks`, async () => (await api.chunkRows(batchId)).length >= chunks, 300_000, 50);
}

/** Waits for the end, then checks the invariants and records the scenario. */
async function expectExact(scenario: string, batchId: string, total: number, faults: number): Promise<void> {
  const batch = await waitFor(`batch ${batchId} to complete`, async () => {
    const current = await api.batch(batchId);
    if (['failed', 'cancelled'].includes(current.status)) throw new Error(`batch ${batchId} ended ${current.status}: ${current.error}`);
    return current.status === 'completed' ? current : undefined;
  }, 300_000, 250);
  const { rows, duplicates } = await api.memoryRows(batchId);
  recordScenario({ scenario, faults, badInputs: 0, serverErrors: 0, lost: total - (rows - duplicates), duplicated: duplicates });
  expect(batch).toMatchObject({ totalMemories: total, processedMemories: total, failedMemories: 0 });
  expect(rows).toBe(total);
  expect(duplicates).toBe(0);
}

test('the worker killed with SIGKILL three times at random points of a 5,000-memory batch: exact, and resumed from the last finished chunk', async () => {
  const total = 5000;
  const batchId = await submit(total);
  const killPoints = Array.from({ length: 3 }, () => 300 + Math.floor(Math.random() * 3900)).sort((a, b) => a - b);
  for (const point of killPoints) {
    await untilProcessed(batchId, point);
    await untilPartHalfDone(batchId);
    await stack.stop('worker', 'SIGKILL');
    await stack.start('worker');
  }
  await expectExact('worker killed (SIGKILL) ×3 during 5,000 memories', batchId, total, killPoints.length);

  // One row per chunk, and retried parts kept the chunks their first attempt had finished.
  const chunks = await api.chunkRows(batchId);
  expect(chunks).toHaveLength(total / 10);
  expect(new Set(chunks.map((c) => c.first)).size).toBe(total / 10);
  const retried = chunks.filter((c) => c.attempt > 1);
  expect(retried.length).toBeGreaterThan(0);
  expect(retried.length).toBeLessThan(chunks.length / 2);
  const resumedParts = [...new Set(retried.map((c) => c.part))].filter((part) => chunks.some((c) => c.part === part && c.attempt === 1));
  expect(resumedParts.length).toBeGreaterThan(0);
});

test('the worker killed with SIGKILL in the middle of a batch of one part (a local activity): another worker completes it, exact', async () => {
  // 100 memories are the test stack's one part; 40 ms each keeps it running for about 4 s.
  const batchId = await submit(100, 40);
  await untilProcessedChunks(batchId, 3);
  const before = await api.chunkRows(batchId);
  expect(before.length).toBeLessThan(10);
  await stack.stop('worker', 'SIGKILL');
  await stack.start('worker');
  await expectExact('worker killed (SIGKILL) during a local part of 100 memories', batchId, 100, 1);
  // The chunks recorded before the kill stand as they were: the re-run found them and went on from there.
  const after = await api.chunkRows(batchId);
  expect(after).toHaveLength(10);
  for (const { first, attempt } of before) expect(after.find((chunk) => chunk.first === first)?.attempt).toBe(attempt);
});

test('Parse Server killed and restarted in the middle of a batch: completes with exact counts', async () => {
  const batchId = await submit(2000);
  await untilProcessed(batchId, 400);
  await stack.stop('server', 'SIGKILL');
  await stack.start('server');
  await expectExact('Parse Server killed and restarted', batchId, 2000, 1);
});

test('Temporal dev server restarted (same database file) in the middle of a batch: completes', async () => {
  const batchId = await submit(2000);
  await untilProcessed(batchId, 400);
  await stack.stop('temporal');
  await stack.start('temporal');
  await expectExact('Temporal dev server restarted', batchId, 2000, 1);
});

test("PostgreSQL connections of Parse Server terminated (pg_terminate_backend) in the middle of a batch: completes", async () => {
  const batchId = await submit(2000);
  const database = new Client({ connectionString: stack.info.databaseURI });
  await database.connect();
  let terminated = 0;
  try {
    for (const point of [300, 900, 1500]) {
      await untilProcessed(batchId, point);
      const { rows } = await database.query<{ terminated: boolean }>(
        "SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
      );
      terminated += rows.filter((row) => row.terminated).length;
    }
  } finally {
    await database.end();
  }
  expect(terminated).toBeGreaterThan(0);
  await expectExact(`PostgreSQL connections terminated ×3 (${terminated} backends)`, batchId, 2000, 3);
});
