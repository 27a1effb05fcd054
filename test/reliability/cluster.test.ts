/**
 * Several instances behind one address, on a private cluster stack (`npm run cluster`'s shape): two Parse
 * Server instances behind the round-robin proxy, two workers, Redis, one PostgreSQL and one Temporal. A batch
 * is followed through the other instance than the one it was submitted to; the rate limits keep one count;
 * an instance killed in the middle of an upload, an instance killed holding a pending batch and a worker
 * killed in the middle of a part lose nothing; a log-out and a permission change on one instance hold on the
 * other at once.
 */
import { Connection, Client } from '@temporalio/client';
import Parse from 'parse/node';
import { workflowIdFor } from '../../schema/workflow';
import { waitFor } from '../../scripts/processes';
import { postgresOnlyTest } from '../support/database';
import { memories } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { countServerErrors, recordAttackChecked, recordScenario, requestFrom, stackApi, tally } from './stackApi';

const LIMITS = { USER_RATE_LIMIT: 12, LOGIN_RATE_LIMIT: 4 };

let stack: PrivateStack;
/** Through the proxy (the public port), and each instance on its own. */
let api: ReturnType<typeof stackApi>;
let onA: ReturnType<typeof stackApi>;
let onB: ReturnType<typeof stackApi>;
let temporal: Client;

beforeAll(async () => {
  stack = await startPrivateStack(
    'cluster',
    {
      USER_RATE_LIMIT: String(LIMITS.USER_RATE_LIMIT),
      LOGIN_RATE_LIMIT: String(LIMITS.LOGIN_RATE_LIMIT),
      // Longer than the file runs: no count is reset half-way.
      RATE_LIMIT_WINDOW: '30m',
      RECONCILE_INTERVAL: '2s',
    },
    { instances: 2, workers: 2 },
  );
  const { info } = stack;
  api = stackApi(info);
  onA = stackApi({ ...info, serverURL: info.instanceURLs[0] });
  onB = stackApi({ ...info, serverURL: info.instanceURLs[1] });
  temporal = new Client({ connection: await Connection.connect({ address: info.temporalAddress }), namespace: info.namespace });
}, 180_000);

afterAll(async () => {
  await temporal?.connection.close();
  await stack?.shutdown();
});

/** Memory rows of a batch as its owner reads them through one instance (Parse's ACLs apply). */
async function ownerMemoryCount(on: ReturnType<typeof stackApi>, token: string, batchId: string): Promise<number> {
  const where = encodeURIComponent(JSON.stringify({ batch: { __type: 'Pointer', className: 'BatchMemoryRequest', objectId: batchId } }));
  const answer = await on.call(`/parse/classes/Memory?where=${where}&count=1&limit=0`, { token });
  expect(answer.status).toBe(200);
  return answer.body.count;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function untilFinished(batchId: string, timeoutMs = 150_000): Promise<Record<string, any>> {
  return waitFor(
    `batch ${batchId} to finish`,
    async () => {
      const batch = await api.batch(batchId);
      return ['completed', 'failed', 'cancelled'].includes(batch.status) ? batch : undefined;
    },
    timeoutMs,
    250,
  );
}

test('a batch submitted through instance A is followed to completion through instance B: status, events, results, LiveQuery, memories on both', async () => {
  const serverErrorsSince = countServerErrors();
  const user = await onA.signUp('follow');
  // A LiveQuery subscriber on B, before the batch exists: it must see the row created on A and every change.
  Parse.initialize(stack.info.appId);
  (Parse as unknown as { serverURL: string }).serverURL = stack.info.instanceURLs[1];
  (Parse as unknown as { liveQueryServerURL: string }).liveQueryServerURL = stack.info.instanceURLs[1].replace(/^http/, 'ws');
  const seen: { status: string; processed: number }[] = [];
  const subscription = await new Parse.Query('BatchMemoryRequest').subscribe(user.token);
  const record = (object: Parse.Object) => seen.push({ status: object.get('status'), processed: object.get('processedMemories') ?? 0 });
  subscription.on('create', record);
  subscription.on('update', record);
  try {
    const count = 300;
    const items = memories(count, 150, (index) => ({ metadata: { index, test_slow_ms: 3 } }));
    const accepted = await onA.call('/api/v1/memory/batch?wait=false', { body: { memories: items }, token: user.token });
    expect(accepted.status).toBe(202);
    const batchId: string = accepted.body.batch_id;

    // The events stream on B runs until the batch ends.
    const events = await fetch(`${stack.info.instanceURLs[1].replace(/\/parse$/, '')}/api/v1/memory/batch/${batchId}/events`, { headers: { 'X-Parse-Session-Token': user.token } });
    expect(events.status).toBe(200);
    const progress = (await events.text())
      .split('\n\n')
      .filter((block) => block.startsWith('event: progress'))
      .map((block) => JSON.parse(block.split('\ndata: ')[1]));
    expect(progress[progress.length - 1]).toMatchObject({ status: 'completed', processed: count });

    const status = await onB.call(`/api/v1/memory/batch/${batchId}`, { token: user.token });
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ status: 'completed', processed: count, failed: 0 });
    const results = await onB.call(`/api/v1/memory/batch/${batchId}/results`, { token: user.token });
    expect(results.status).toBe(200);
    expect(String(results.body).trim().split('\n')).toHaveLength(count);

    await waitFor('the LiveQuery subscriber on B to see the completion', async () => seen.some((change) => change.status === 'completed'), 30_000);
    const statuses = seen.map((change) => change.status).filter((value, index, all) => index === 0 || all[index - 1] !== value);
    expect(statuses).toEqual(['pending', 'processing', 'completed']);
    expect(seen[seen.length - 1]).toEqual({ status: 'completed', processed: count });

    const ownerCounts = [await ownerMemoryCount(onA, user.token, batchId), await ownerMemoryCount(onB, user.token, batchId)];
    const rows = await api.memoryRows(batchId);
    const serverErrors = serverErrorsSince();
    recordScenario({
      scenario: 'cluster: submitted through instance A, followed through instance B (status, events, results, LiveQuery)',
      faults: 0,
      badInputs: 0,
      serverErrors,
      lost: count - rows.rows,
      duplicated: rows.duplicates,
    });
    expect(ownerCounts).toEqual([count, count]);
    expect(rows).toEqual({ rows: count, duplicates: 0 });
    expect(serverErrors).toBe(0);
  } finally {
    await subscription.unsubscribe();
    await Parse.LiveQuery.close();
  }
});

test('the rate limits are one limit across instances: requests spread over A and B get exactly the 429s one instance would give', async () => {
  const user = await onA.signUp('limited');
  const statuses: number[] = [];
  for (let request = 0; request < LIMITS.USER_RATE_LIMIT + 4; request++) {
    const on = request % 2 === 0 ? onA : onB;
    statuses.push((await on.call('/api/v1/memory/batch/unknownbatch', { token: user.token })).status);
  }
  expect(statuses).toEqual([...Array(LIMITS.USER_RATE_LIMIT).fill(404), 429, 429, 429, 429]);

  // Parse Server's own limit (log-ins per address), counted in Redis too: from an address of this test's own.
  const from = '127.0.0.21';
  const username = (await onA.call('/parse/users', { body: { username: `login-${Date.now()}`, password: 'test-password-123' } })).body;
  expect(username.objectId).toEqual(expect.any(String));
  const logins: number[] = [];
  for (let attempt = 0; attempt < LIMITS.LOGIN_RATE_LIMIT + 2; attempt++) {
    const url = stack.info.instanceURLs[attempt % 2];
    const answer = await requestFrom(`${url}/login`, {
      method: 'POST',
      from,
      headers: { 'X-Parse-Application-Id': stack.info.appId, 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'nobody-here', password: 'wrong-password-1' }),
    });
    logins.push(answer.status);
  }
  expect(logins).toEqual([...Array(LIMITS.LOGIN_RATE_LIMIT).fill(404), 429, 429]);
});

test('the proxy names each client: the master key from another address through it is refused, a forged X-Forwarded-For changes nothing, per-address counts are per client', async () => {
  const proxied = stack.info.serverURL.replace(/\/parse$/, '');
  const withKey = { 'X-Parse-Application-Id': stack.info.appId, 'X-Parse-Master-Key': stack.info.masterKey };
  // The REST route's master-key check and Parse Server's own, each from the given address through the proxy.
  const masterKeyAnswers = async (from: string, headers: Record<string, string> = {}) => [
    (await requestFrom(`${proxied}/api/v1/memory/batch/unknownbatch`, { from, headers: { ...withKey, ...headers } })).status,
    (await requestFrom(`${proxied}/parse/classes/_User?limit=1`, { from, headers: { ...withKey, ...headers } })).status,
  ];
  // The operator's own machine, inside PARSE_MASTER_KEY_IPS: accepted (no such batch; the users' list).
  expect(await masterKeyAnswers('127.0.0.1')).toEqual([404, 200]);

  const attempts: number[] = [];
  await recordAttackChecked(
    () => ({
      attack: 'master key from an address outside PARSE_MASTER_KEY_IPS through the cluster proxy, with and without a forged X-Forwarded-For',
      requests: attempts.length,
      answers: tally(attempts),
    }),
    async () => {
      for (const headers of [{}, { 'X-Forwarded-For': '127.0.0.1' }] as Record<string, string>[]) attempts.push(...(await masterKeyAnswers('127.0.0.2', headers)));
      expect(attempts).toEqual([401, 403, 401, 403]);
    },
  );

  // Failed log-ins through the proxy count per client: one address reaches LOGIN_RATE_LIMIT, the next starts afresh.
  const username = `proxied-${Date.now()}`;
  expect((await api.call('/parse/users', { body: { username, password: 'test-password-123' } })).status).toBe(201);
  const failedLogin = async (from: string) =>
    (
      await requestFrom(`${proxied}/parse/login`, {
        method: 'POST',
        from,
        headers: { 'X-Parse-Application-Id': stack.info.appId, 'Content-Type': 'application/json' },
        body: JSON.stringify({ username, password: 'wrong-password-1' }),
      })
    ).status;
  const first: number[] = [];
  for (let attempt = 0; attempt < LIMITS.LOGIN_RATE_LIMIT + 1; attempt++) first.push(await failedLogin('127.0.0.31'));
  expect(first).toEqual([...Array(LIMITS.LOGIN_RATE_LIMIT).fill(404), 429]);
  expect(await failedLogin('127.0.0.32')).toBe(404);
});

test('failed Dashboard logins are one count across instances: spread over A and B from one address, the one past DASHBOARD_LOGIN_MAX_FAILURES is 429', async () => {
  const maxFailures = 5; // the default of DASHBOARD_LOGIN_MAX_FAILURES, which this stack keeps
  const from = '127.0.0.41';
  const statuses: number[] = [];
  await recordAttackChecked(
    () => ({ attack: 'Dashboard password guessing spread over two instances from one address', requests: statuses.length, answers: tally(statuses) }),
    async () => {
      for (let attempt = 0; attempt <= maxFailures; attempt++) {
        const instance = stack.info.instanceURLs[attempt % 2].replace(/\/parse$/, '');
        const answer = await requestFrom(`${instance}/dashboard/login`, {
          method: 'POST',
          from,
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ username: 'admin', password: `wrong-${attempt}` }).toString(),
        });
        statuses.push(answer.status);
      }
      expect(statuses.slice(0, maxFailures)).not.toContain(429);
      expect(statuses[maxFailures]).toBe(429);
    },
  );
});

test('instance A killed (SIGKILL) in the middle of an NDJSON upload: the retry with the same Idempotency-Key through the proxy reaches B and the batch ends exact', async () => {
  const user = await api.signUp('killed-upload');
  const count = 2000;
  const body =
    memories(count, 900)
      .map((item) => JSON.stringify(item))
      .join('\n') + '\n';
  const bytes = Buffer.from(body);
  const key = `cluster-upload-${Date.now()}`;
  const headers = { 'X-Parse-Application-Id': stack.info.appId, 'X-Parse-Session-Token': user.token, 'Content-Type': 'application/x-ndjson', 'Idempotency-Key': key };
  const origin = stack.info.serverURL.replace(/\/parse$/, '');

  // The proxy takes turns: the instance after the one that answers this probe receives the upload.
  const probe = await fetch(`${origin}/parse/health`);
  const probed = Number(probe.headers.get('x-served-by'));
  const ports = stack.info.instanceURLs.map((url) => Number(new URL(url).port));
  const receiver = ports.find((port) => port !== probed) as number;
  const receiverName = receiver === ports[0] ? 'server' : 'server-2';

  // Half the body, then the stream holds until the instance receiving it is gone.
  let sent = 0;
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const CHUNK = 64 * 1024;
  const upload = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent >= bytes.length / 2) {
        await held;
        controller.error(new Error('the client gave up on this connection'));
        return;
      }
      controller.enqueue(bytes.subarray(sent, sent + CHUNK));
      sent += CHUNK;
    },
  });
  let firstOutcome: number | 'network error' | undefined;
  void fetch(`${origin}/api/v1/memory/batch?wait=false`, { method: 'POST', headers, body: upload, duplex: 'half' } as RequestInit).then(
    (response) => (firstOutcome = response.status),
    () => (firstOutcome = 'network error'),
  );
  await waitFor('half the upload to be sent', async () => sent >= bytes.length / 2, 60_000, 50);
  await stack.stop(receiverName, 'SIGKILL');
  try {
    // The upload dies with its instance: no answer, or the proxy's 502 (an upload still open was elsewhere).
    await waitFor('the cut upload to end', async () => firstOutcome !== undefined, 30_000, 50);
    release();
    expect(['network error', 502]).toContain(firstOutcome);

    // The client retries the whole body with the same key until an instance accepts it.
    const retries: number[] = [];
    const accepted = await waitFor(
      'the retried upload to be accepted',
      async () => {
        const answer = await fetch(`${origin}/api/v1/memory/batch?wait=false`, { method: 'POST', headers, body: bytes });
        retries.push(answer.status);
        return answer.status === 202 || answer.status === 200 ? { servedBy: Number(answer.headers.get('x-served-by')), body: await answer.json() } : undefined;
      },
      60_000,
      250,
    );
    expect(accepted.servedBy).not.toBe(receiver);
    const batchId: string = accepted.body.batch_id;
    expect((await untilFinished(batchId)).status).toBe('completed');
    const rows = await api.memoryRows(batchId);
    expect(rows).toEqual({ rows: count, duplicates: 0 });
    // Nothing of the cut upload was kept: the user has the one batch.
    expect(await api.count('BatchMemoryRequest', { user: { __type: 'Pointer', className: '_User', objectId: user.id } })).toBe(1);
    // The proxy's 502 for the dead instance is the load balancer's answer, not the product's.
    recordScenario({
      scenario: 'cluster: Parse Server instance SIGKILLed mid NDJSON upload, retried with the same Idempotency-Key through the proxy',
      faults: 1,
      badInputs: 0,
      serverErrors: retries.filter((status) => status >= 500 && status !== 502).length,
      lost: count - rows.rows,
      duplicated: rows.duplicates,
    });
  } finally {
    release();
    await stack.start(receiverName);
  }
});

test("a batch instance A stored while Temporal was unreachable, A then killed: B's reconciler starts it and it ends exact", async () => {
  const serverErrorsSince = countServerErrors();
  const user = await onA.signUp('reconciled');
  const count = 150;
  await stack.stop('temporal');
  let accepted: Awaited<ReturnType<typeof api.call>>;
  try {
    accepted = await onA.call('/api/v1/memory/batch?wait=false', { body: { memories: memories(count, 150) }, token: user.token });
    expect(accepted).toMatchObject({ status: 202, body: { status: 'pending', total: count } });
    await stack.stop('server', 'SIGKILL');
  } finally {
    await stack.start('temporal');
  }
  try {
    // Only B is left to find the pending batch (RECONCILE_INTERVAL) and start its workflow.
    const finished = await untilFinished(accepted.body.batch_id);
    const rows = await api.memoryRows(accepted.body.batch_id);
    const serverErrors = serverErrorsSince();
    recordScenario({
      scenario: 'cluster: batch stored by an instance during a Temporal outage, that instance SIGKILLed, started by the other',
      faults: 2,
      badInputs: 0,
      serverErrors,
      lost: count - rows.rows,
      duplicated: rows.duplicates,
    });
    expect(finished).toMatchObject({ status: 'completed', processedMemories: count });
    expect(rows).toEqual({ rows: count, duplicates: 0 });
    expect(serverErrors).toBe(0);
  } finally {
    await stack.start('server');
  }
});

test('two workers, the one running a part killed (SIGKILL): the other finishes the batch exactly', async () => {
  const serverErrorsSince = countServerErrors();
  const user = await api.signUp('killed-worker');
  const count = 800;
  const items = memories(count, 150, (index) => ({ metadata: { index, test_slow_ms: 20 } }));
  const accepted = await api.call('/api/v1/memory/batch?wait=false', { body: { memories: items }, token: user.token });
  expect(accepted.status).toBe(202);
  const batchId: string = accepted.body.batch_id;
  const pids = stack.info.pids;
  // The worker running one of the batch's parts right now (Temporal names it pid@host).
  const running = await waitFor(
    'a part of the batch to run on a worker',
    async () => {
      const description = await temporal.workflow.getHandle(workflowIdFor(batchId)).describe();
      for (const activity of description.raw.pendingActivities ?? []) {
        const pid = Number(activity.lastWorkerIdentity?.split('@')[0]);
        const name = Object.keys(pids).find((process) => process.startsWith('worker') && pids[process] === pid);
        if (name && (await api.batch(batchId)).processedMemories > 0) return name as 'worker' | 'worker-2';
      }
      return undefined;
    },
    120_000,
    100,
  );
  await stack.stop(running, 'SIGKILL');
  try {
    const finished = await untilFinished(batchId);
    const rows = await api.memoryRows(batchId);
    const serverErrors = serverErrorsSince();
    recordScenario({
      scenario: 'cluster: one of two workers SIGKILLed mid part',
      faults: 1,
      badInputs: 0,
      serverErrors,
      lost: count - rows.rows,
      duplicated: rows.duplicates,
    });
    expect(finished).toMatchObject({ status: 'completed', processedMemories: count, failedMemories: 0 });
    expect(rows).toEqual({ rows: count, duplicates: 0 });
    expect(serverErrors).toBe(0);
  } finally {
    stack.info.pids[running] = await stack.start(running);
  }
});

test('10 users × 100 memories spread over both instances: every batch exact', async () => {
  const users = await Promise.all(Array.from({ length: 10 }, (_, k) => (k % 2 === 0 ? onA : onB).signUp(`load-${k}`)));
  const batches = await Promise.all(
    users.map(async (user, k) => {
      const answer = await (k % 2 === 0 ? onA : onB).call('/api/v1/memory/batch?wait=false', { body: { memories: memories(100, 200) }, token: user.token });
      expect(answer.status).toBe(202);
      return answer.body.batch_id as string;
    }),
  );
  for (const batchId of batches) {
    expect((await untilFinished(batchId)).status).toBe('completed');
    expect(await api.memoryRows(batchId)).toEqual({ rows: 100, duplicates: 0 });
  }
  const byInstance = await Promise.all(users.map((user, k) => ownerMemoryCount(k % 2 === 0 ? onB : onA, user.token, batches[k])));
  expect(byInstance).toEqual(Array(10).fill(100));
});

test('a log-out made on instance A holds on B at once', async () => {
  const user = await onA.signUp('logout');
  expect((await onB.call('/parse/users/me', { token: user.token })).status).toBe(200);
  // The session ends on A; B must not keep it alive from its cache (Parse Server's cache lives in Redis).
  expect((await onA.call('/parse/logout', { method: 'POST', token: user.token, body: {} })).status).toBe(200);
  expect(await onB.call('/parse/users/me', { token: user.token })).toMatchObject({ status: 400, body: { code: Parse.Error.INVALID_SESSION_TOKEN } });
});

// Schema changes are announced through the database: PostgreSQL's LISTEN/NOTIFY; on MongoDB change streams,
// which need a replica set (the MongoDB run's server is a standalone one, or FerretDB, which has none).
postgresOnlyTest('a class-level-permission change made on instance A holds on B at once', async () => {
  const className = `ClusterProbe${Date.now()}`;
  const open = { find: { '*': true }, get: { '*': true }, count: { '*': true }, create: {}, update: {}, delete: {}, addField: {}, protectedFields: {} };
  expect((await onA.call(`/parse/schemas/${className}`, { method: 'POST', master: true, body: { className, fields: { label: { type: 'String' } }, classLevelPermissions: open } })).status).toBe(200);
  // B reads the class, and so holds its schema in its cache; it learns of the new class itself through the same
  // announcement, so its first reads may come before it has heard.
  const query = `/parse/classes/${className}`;
  await waitFor('B to read the new class', async () => (await onB.call(query)).status === 200 || undefined, 10_000, 100);
  expect((await onA.call(`/parse/schemas/${className}`, { method: 'PUT', master: true, body: { classLevelPermissions: { ...open, find: {}, get: {}, count: {} } } })).status).toBe(200);
  // Announced through the database (LISTEN/NOTIFY): B refuses as soon as it has heard.
  const refused = await waitFor(
    'B to refuse the find the permission change forbids',
    async () => {
      const answer = await onB.call(query);
      return answer.status === 200 ? undefined : answer;
    },
    10_000,
    100,
  );
  expect(refused).toMatchObject({ status: 400, body: { code: Parse.Error.OPERATION_FORBIDDEN } });
});
