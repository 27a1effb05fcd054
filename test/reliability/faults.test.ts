/**
 * Faults on a private stack: the worker killed with SIGKILL three times, Parse Server and the
 * Temporal dev server restarted, PostgreSQL connections terminated, each in the middle of a batch.
 * Every batch completes with exact counts, nothing lost and nothing written twice, and no answer of the
 * REST route is a 5xx; a killed worker's parts resume after their recorded chunks (what the processor
 * prepared shows it).
 */
import { Readable } from 'node:stream';
import { Client } from 'pg';
import { loadConfig } from '../../config';
import { waitFor } from '../../scripts/processes';
import { postgresOnlyTest } from '../support/database';
import { memories, preparedItems } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { recordScenario, stackApi, tally } from './stackApi';

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;
let user: { id: string; token: string };

beforeAll(async () => {
  // Status is polled through the REST route many times a second: no rate limit here.
  stack = await startPrivateStack('faults', { MAX_BATCH_SIZE: '10000', RECONCILE_INTERVAL: '2s' });
  api = stackApi(stack.info);
  user = await api.signUp('faults');
}, 180_000);

afterAll(async () => {
  await stack?.shutdown();
});

// Every request goes through fetch, which is watched: the answers of the product's REST route (the
// submission, and the status polls a client makes before, during and after the faults) are counted by
// status, and a 5xx among them fails the scenario. The test's own master-key reads of Parse Server's
// classes (chunk and memory rows) are instruments, not answers to a client, and are not counted.
const requests = jest.spyOn(globalThis, 'fetch');
beforeEach(() => requests.mockClear());

/** Every answer of the REST route the scenario received so far: its status (`network error` when there was none) and request. */
async function answersReceived(): Promise<{ status: number | 'network error'; request: string }[]> {
  const calls = requests.mock.calls.map(([input, init], k) => ({ request: `${init?.method ?? 'GET'} ${String(input).replace(/^https?:\/\/[^/]+/, '')}`, result: requests.mock.results[k] }));
  return Promise.all(
    calls
      .filter(({ request }) => / \/api\/v1\//.test(request))
      .map(async ({ request, result }) => {
        try {
          return { status: (await (result.value as Promise<Response>)).status, request };
        } catch {
          return { status: 'network error' as const, request };
        }
      }),
  );
}

/**
 * Items take 4 ms each to prepare (as an embedding call would take longer), so that every fault lands in a
 * running batch; the test processor records each preparation (see preparedItems).
 */
async function submit(count: number, slowMs = 4): Promise<string> {
  const items = memories(count, 150, (index) => ({ metadata: { index, test_slow_ms: slowMs, test_record: true } }));
  const answer = await api.call('/api/v1/memory/batch?wait=false', { body: { memories: items }, token: user.token });
  expect(answer.status).toBe(202);
  return answer.body.batch_id;
}

/** The batch's status as its owner reads it (GET /api/v1/memory/batch/:id). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function batchStatus(batchId: string): Promise<Record<string, any>> {
  const answer = await api.call(`/api/v1/memory/batch/${batchId}`, { token: user.token });
  if (answer.status !== 200) throw new Error(`the status of batch ${batchId} answered ${answer.status}`);
  return answer.body;
}

/** Waits until the batch has passed `atLeast` memories and checks that it still runs: the fault that follows lands in it. */
async function untilProcessed(batchId: string, atLeast: number): Promise<void> {
  const batch = await waitFor(
    `batch ${batchId} to pass ${atLeast} memories`,
    async () => {
      const current = await batchStatus(batchId);
      return current.processed >= atLeast ? current : undefined;
    },
    300_000,
    100,
  );
  expect(batch.status).toBe('processing');
}

/**
 * Waits until some part has recorded its first write (3 chunks of the test stack's 10 to a part of 100) or its
 * second but no more: at least two writes of that part are left, so a kill that follows lands inside it even on a
 * loaded machine.
 */
async function untilPartHalfDone(batchId: string): Promise<void> {
  await waitFor(
    `a part of batch ${batchId} to be half done`,
    async () => {
      const perPart = new Map<number, number>();
      for (const { part } of await api.chunkRows(batchId)) perPart.set(part, (perPart.get(part) ?? 0) + 1);
      return [...perPart.values()].some((chunks) => chunks <= 6);
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
  const batch = await waitFor(
    `batch ${batchId} to complete`,
    async () => {
      const current = await batchStatus(batchId);
      if (['failed', 'cancelled'].includes(current.status)) throw new Error(`batch ${batchId} ended ${current.status}: ${current.error}`);
      return current.status === 'completed' ? current : undefined;
    },
    300_000,
    250,
  );
  const { rows, duplicates } = await api.memoryRows(batchId);
  const received = await answersReceived();
  const answers = tally(received.map(({ status }) => status));
  const failures = received.filter(({ status }) => typeof status === 'number' && status >= 500);
  const serverErrors = failures.length;
  recordScenario({ scenario, faults, badInputs: 0, serverErrors, lost: total - (rows - duplicates), duplicated: duplicates });
  expect(batch).toMatchObject({ total, processed: total, failed: 0 });
  expect(rows).toBe(total);
  expect(duplicates).toBe(0);
  expect(answers['200']).toBeGreaterThan(0);
  expect({ answers, failures }).toEqual({ answers, failures: [] });
}

/** A SIGKILL of the worker: the chunks recorded just before it, and how many preparations the log held after it. */
interface Kill {
  recorded: number[];
  preparedBefore: number;
}

async function killWorker(batchId: string): Promise<Kill> {
  const recorded = (await api.chunkRows(batchId)).map((chunk) => chunk.first);
  await stack.stop('worker', 'SIGKILL');
  const kill = { recorded, preparedBefore: preparedItems(batchId, stack.info.env.DATA_DIR).length };
  await stack.start('worker');
  return kill;
}

/**
 * Resumed, not redone, from what the processor prepared: after each kill no item of a chunk recorded
 * before it was prepared again, and each part prepared again at most the items of its write in flight
 * (BATCH_WRITE_MAX_ITEMS).
 */
function expectResumedAfterEachKill(batchId: string, kills: Kill[]): void {
  const { BATCH_CHUNK_SIZE: chunkSize, BATCH_WRITE_MAX_ITEMS: writeItems, BATCH_PART_MAX_ITEMS: partItems } = loadConfig(stack.info.env);
  const prepared = preparedItems(batchId, stack.info.env.DATA_DIR);
  kills.forEach(({ recorded, preparedBefore }, k) => {
    const after = prepared.slice(preparedBefore);
    const finished = new Set(recorded.flatMap((first) => Array.from({ length: chunkSize }, (_, offset) => first + offset)));
    expect({ kill: k + 1, preparedAgain: after.filter(({ i }) => finished.has(i)).map(({ i }) => i) }).toEqual({ kill: k + 1, preparedAgain: [] });
    const inFlight = new Set(prepared.slice(k === 0 ? 0 : kills[k - 1].preparedBefore, preparedBefore).map(({ i }) => i));
    const repeatedPerPart = new Map<number, Set<number>>();
    for (const { i } of after.filter(({ i }) => inFlight.has(i))) {
      const part = Math.floor(i / partItems);
      repeatedPerPart.set(part, (repeatedPerPart.get(part) ?? new Set()).add(i));
    }
    for (const [part, repeated] of repeatedPerPart)
      expect({ kill: k + 1, part, repeated: repeated.size <= writeItems ? 'at most one write' : [...repeated] }).toEqual({ kill: k + 1, part, repeated: 'at most one write' });
  });
}

test('the worker killed with SIGKILL three times at random points of a 5,000-memory batch: exact, and resumed from the last finished chunk', async () => {
  const total = 5000;
  const batchId = await submit(total);
  // The status's running count lags the chunks written (a killed part's counts are recounted when the batch ends),
  // so the last point leaves room for that lag (up to a part per lane for each kill and for the last flush) and the batch still runs.
  const killPoints = Array.from({ length: 3 }, () => 300 + Math.floor(Math.random() * 3000)).sort((a, b) => a - b);
  const kills: Kill[] = [];
  for (const point of killPoints) {
    await untilProcessed(batchId, point);
    await untilPartHalfDone(batchId);
    kills.push(await killWorker(batchId));
  }
  await expectExact('worker killed (SIGKILL) ×3 during 5,000 memories', batchId, total, killPoints.length);
  expectResumedAfterEachKill(batchId, kills);

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
  const kill = await killWorker(batchId);
  await expectExact('worker killed (SIGKILL) during a local part of 100 memories', batchId, 100, 1);
  expectResumedAfterEachKill(batchId, [kill]);
  // The chunks recorded before the kill stand as they were: the re-run found them and went on from there.
  const after = await api.chunkRows(batchId);
  expect(after).toHaveLength(10);
  for (const { first, attempt } of before) expect(after.find((chunk) => chunk.first === first)?.attempt).toBe(attempt);
});

test('the worker killed with SIGKILL while parts are processed before the upload has finished (process=while_uploading): exact, and resumed', async () => {
  const total = 1000;
  // 20 ms an item: a part of 100 takes about 2 s, so that the kill lands inside one while the body is held open.
  const body = memories(total, 150, (index) => ({ metadata: { index, test_slow_ms: 20, test_record: true } })).map((item) => `${JSON.stringify(item)}\n`);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const stream = Readable.from(
    (async function* () {
      yield body.slice(0, 500).join('');
      await held;
      yield body.slice(500).join('');
    })(),
  );
  const answer = fetch(`${stack.info.serverURL.replace(/\/parse$/, '')}/api/v1/memory/batch?process=while_uploading&wait=false`, {
    method: 'POST',
    headers: { 'X-Parse-Session-Token': user.token, 'Content-Type': 'application/x-ndjson' },
    body: Readable.toWeb(stream) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  const ofUser = encodeURIComponent(JSON.stringify({ user: { __type: 'Pointer', className: '_User', objectId: user.id }, status: 'receiving' }));
  const batchId: string = await waitFor(
    'the batch of the open upload',
    async () => (await api.call(`/parse/classes/BatchMemoryRequest?where=${ofUser}`, { master: true })).body.results[0]?.objectId,
    60_000,
    50,
  );
  await untilPartHalfDone(batchId);
  const kill = await killWorker(batchId);
  expect((await batchStatus(batchId)).status).toBe('receiving');
  release();
  const accepted = await answer;
  expect(accepted.status).toBe(202);
  expect(await accepted.json()).toMatchObject({ batch_id: batchId, total });
  await expectExact('worker killed (SIGKILL) while parts are processed before the upload has finished', batchId, total, 1);
  expectResumedAfterEachKill(batchId, [kill]);
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

postgresOnlyTest('PostgreSQL connections of Parse Server terminated (pg_terminate_backend) in the middle of a batch: completes', async () => {
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
