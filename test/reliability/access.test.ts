/**
 * Load and access on the shared stack: ten users import at once and each sees only their own
 * memories and batches; through every read path, another user and an anonymous client get the one
 * refusal that path gives (pinned here: Parse 101 / 119 / 142 / 209, HTTP 403 / 404 / 401), stored
 * files need the master key, and a batch's webhook secret reaches nobody but the master key. Every
 * HTTP answer is counted by status, so the 5xx column of the reliability table is measured. A user name
 * or email held in another letter case is taken, on FerretDB too.
 */
import { fileURL } from '../../schema/batchFile';
import { BATCH_PROTECTED_FIELDS } from '../../schema/classes';
import { countMemories, duplicateMemories, getBatch, master, memories, newUser, parse, type TestUser, waitFor } from '../support/helpers';
import { REST } from '../support/rest';
import { stackInfo } from '../support/stackInfo';
import { recordAttack, recordAttackChecked, recordScenario, stackApi, tally } from './stackApi';

interface Reply {
  status: number;
  text: string;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** HTTP statuses of every answer of one scenario (0: no answer at all). */
class Answers {
  readonly statuses: number[] = [];

  async fetch(url: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Reply> {
    let response: Response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      this.statuses.push(0);
      throw error;
    }
    const text = await response.text();
    this.statuses.push(response.status);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, text, body };
  }

  /** Parse Server's own REST API, as a user (session token), anonymously, or with the master key. */
  parse(path: string, options: { token?: string; master?: boolean; method?: string; body?: unknown } = {}): Promise<Reply> {
    const info = stackInfo();
    return this.fetch(`${info.serverURL}${path}`, {
      method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
      headers: {
        'X-Parse-Application-Id': info.appId,
        ...(options.token ? { 'X-Parse-Session-Token': options.token } : {}),
        ...(options.master ? { 'X-Parse-Master-Key': info.masterKey } : {}),
        ...(options.body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
  }

  rest(path: string, options: { token?: string; method?: string } = {}): Promise<Reply> {
    return this.fetch(`${REST}${path}`, { method: options.method ?? 'GET', headers: options.token ? { 'X-Parse-Session-Token': options.token } : {} });
  }

  get serverErrors(): number {
    return this.statuses.filter((status) => status >= 500).length;
  }
}

/** The one answer a path gives: its HTTP status, and its Parse code (number) or REST error code (string). */
interface Refusal {
  status: number;
  code?: number | string;
  /** A query that answers with nothing: `results: []`, or `count: 0`. */
  empty?: 'results' | 'count';
}

const NOT_FOUND: Refusal = { status: 404, code: 101 };
/** Parse Server's answer to an anonymous read of a class that requires authentication. */
const NOT_AUTHENTICATED: Refusal = { status: 404, code: 101 };
const FORBIDDEN: Refusal = { status: 400, code: 119 };
const MASTER_KEY_REQUIRED: Refusal = { status: 400, code: 142 };
const NO_SESSION: Refusal = { status: 400, code: 209 };
const NO_ROWS: Refusal = { status: 200, empty: 'results' };
const NO_COUNT: Refusal = { status: 200, empty: 'count' };

/** How a reply differs from the refusal expected of it (undefined when it is exactly that). */
function differs(reply: Reply, expected: Refusal): string | undefined {
  const code = typeof expected.code === 'string' ? reply.body?.error?.code : reply.body?.code;
  const problems = [
    reply.status !== expected.status && `status ${reply.status}, expected ${expected.status}`,
    expected.code !== undefined && code !== expected.code && `code ${code}, expected ${expected.code}`,
    expected.empty === 'results' && !(Array.isArray(reply.body?.results) && reply.body.results.length === 0) && 'results are not empty',
    expected.empty === 'count' && reply.body?.count !== 0 && `count ${reply.body?.count}, expected 0`,
  ].filter(Boolean);
  return problems.length ? `${problems.join('; ')} — got ${reply.text.slice(0, 200)}` : undefined;
}

test('10 concurrent batches of 100 memories from 10 users: all succeed, each user sees only their own', async () => {
  const answers = new Answers();
  const users = await Promise.all(Array.from({ length: 10 }, (_, i) => newUser(`concurrent${i}`)));
  const replies = await Promise.all(
    users.map((user, i) => answers.parse('/functions/addMemoryBatch', { token: user.sessionToken, body: { memories: memories(100, 200, (index) => ({ metadata: { index, owner: i } })) } })),
  );
  let lost = 0;
  let duplicated = 0;
  for (const [i, reply] of replies.entries()) {
    expect(reply.status).toBe(200);
    const answer = reply.body.result;
    expect(answer).toMatchObject({ success: true, status: 'completed', total: 100, processed: 100, failed: 0 });
    const rows = await countMemories(answer.batch_id);
    lost += 100 - rows;
    duplicated += await duplicateMemories(answer.batch_id);
    const own = await answers.parse('/classes/Memory?limit=1000', { token: users[i].sessionToken });
    expect(own.status).toBe(200);
    expect(own.body.results).toHaveLength(100);
    expect(new Set(own.body.results.map((m: { metadata: { owner: number } }) => m.metadata.owner))).toEqual(new Set([i]));
    const batches = await answers.parse('/classes/BatchMemoryRequest', { token: users[i].sessionToken });
    expect(batches.body.results.map((b: { objectId: string }) => b.objectId)).toEqual([answer.batch_id]);
  }
  recordScenario({ scenario: '10 users × 100 memories at once', faults: 0, badInputs: 0, serverErrors: answers.serverErrors, lost, duplicated });
  expect(answers.statuses.filter((status) => status !== 200)).toEqual([]);
  expect(lost).toBe(0);
  expect(duplicated).toBe(0);
});

test('every read path: another user and an anonymous client get the exact refusal; files need the master key; the webhook secret reaches only the master key', async () => {
  const P = parse();
  // The attack (another user, anonymous) and the owner's own reads are counted apart; both count towards 5xx.
  const attacker = new Answers();
  const answers = new Answers();
  const owner = await newUser('owner');
  const other: TestUser = await newUser('other');
  // Port 9 on loopback (discard): the webhook is never delivered anywhere.
  const webhookSecret = `secret-${Math.random().toString(36).slice(2)}-never-shown`;
  const submitted = await answers.parse('/functions/addMemoryBatch', {
    token: owner.sessionToken,
    body: { memories: [...memories(30), { content: 'refused', metadata: { test_reject: 'no' } }], webhook_url: 'http://localhost:9/hook', webhook_secret: webhookSecret },
  });
  expect(submitted.status).toBe(200);
  const batchId: string = submitted.body.result.batch_id;
  const batch = await getBatch(batchId);
  expect(batch.get('webhookSecret')).toBe(webhookSecret);

  const wrong: string[] = [];
  let attempts = 0;
  const expectRefusal = (path: string, reply: Reply, expected: Refusal) => {
    attempts++;
    const problem = differs(reply, expected);
    if (problem) wrong.push(`${path}: ${problem}`);
  };
  const asOther = { token: other.sessionToken };
  const where = (query: object) => `where=${encodeURIComponent(JSON.stringify(query))}`;

  // Parse classes through Parse Server's REST API (what the SDK sends): find, count, get.
  // Readable classes filter by ACL (another user finds nothing; anonymous needs a session); the rest are master-key only.
  const acl = {
    BatchMemoryRequest: [NO_ROWS, NO_COUNT, NOT_AUTHENTICATED],
    Memory: [NO_ROWS, NO_COUNT, NOT_AUTHENTICATED],
    BatchMemoryPart: [FORBIDDEN, FORBIDDEN, FORBIDDEN],
    BatchMemoryChunk: [FORBIDDEN, FORBIDDEN, FORBIDDEN],
  };
  for (const [className, [find, count, anonymous]] of Object.entries(acl)) {
    expectRefusal(`find ${className} as another user`, await attacker.parse(`/classes/${className}`, asOther), find);
    expectRefusal(`count ${className} as another user`, await attacker.parse(`/classes/${className}?count=1&limit=0`, asOther), count);
    expectRefusal(`find ${className} anonymous`, await attacker.parse(`/classes/${className}`), anonymous);
    expectRefusal(`count ${className} anonymous`, await attacker.parse(`/classes/${className}?count=1&limit=0`), anonymous);
  }
  expectRefusal('get the batch as another user', await attacker.parse(`/classes/BatchMemoryRequest/${batchId}`, asOther), NOT_FOUND);
  expectRefusal('get the batch anonymous', await attacker.parse(`/classes/BatchMemoryRequest/${batchId}`), NOT_AUTHENTICATED);
  const ofBatch = where({ batch: { __type: 'Pointer', className: 'BatchMemoryRequest', objectId: batchId } });
  expectRefusal('Memory of the batch as another user', await attacker.parse(`/classes/Memory?${ofBatch}`, asOther), NO_ROWS);
  expectRefusal('chunks of the batch as another user', await attacker.parse(`/classes/BatchMemoryChunk?${ofBatch}`, asOther), FORBIDDEN);

  // Files: part and results files, by URL.
  const endpoint = { serverURL: stackInfo().serverURL, appId: stackInfo().appId, masterKey: stackInfo().masterKey };
  const parts = await new P.Query('BatchMemoryPart').equalTo('partsKey', batch.get('partsKey')).find(master);
  const urls = [...parts.map((part) => fileURL(endpoint, part.get('name'))), fileURL(endpoint, (batch.get('resultsFile') as Parse.File).name())];
  for (const url of urls) {
    const file = url.slice(url.lastIndexOf('/') + 1);
    expectRefusal(`file ${file} anonymous`, await attacker.fetch(url), { status: 403, code: 119 });
    expectRefusal(`file ${file} as another user`, await attacker.fetch(url, { headers: { 'X-Parse-Session-Token': other.sessionToken } }), { status: 403, code: 119 });
    const withMaster = await answers.fetch(url, { headers: { 'X-Parse-Master-Key': endpoint.masterKey } });
    if (withMaster.status !== 200) wrong.push(`file ${file} with the master key: status ${withMaster.status}`);
  }

  // The REST route: status, results, events, cancel, retry, delete.
  for (const [method, path] of [
    ['GET', ''],
    ['GET', '/results'],
    ['GET', '/events'],
    ['POST', '/cancel'],
    ['POST', '/retry'],
    ['DELETE', ''],
  ]) {
    expectRefusal(`${method} ${path || '/'} as another user`, await attacker.rest(`/memory/batch/${batchId}${path}`, { method, ...asOther }), { status: 404, code: 'not_found' });
    expectRefusal(`${method} ${path || '/'} anonymous`, await attacker.rest(`/memory/batch/${batchId}${path}`, { method }), { status: 401, code: 'unauthorized' });
  }

  // Cloud Functions.
  const params = { batch_id: batchId, object: { __type: 'Object', className: 'BatchMemoryRequest', objectId: batchId } };
  for (const name of [
    'getMemoryBatch',
    'getMemoryBatchData',
    'cancelMemoryBatch',
    'retryMemoryBatch',
    'deleteMemoryBatch',
    'dashboardCancelBatch',
    'dashboardRetryFailedItems',
    'dashboardDeleteBatch',
  ]) {
    const script = name.startsWith('dashboard');
    expectRefusal(`${name} as another user`, await attacker.parse(`/functions/${name}`, { ...asOther, body: params }), script ? MASTER_KEY_REQUIRED : NOT_FOUND);
    expectRefusal(`${name} anonymous`, await attacker.parse(`/functions/${name}`, { body: params }), script ? MASTER_KEY_REQUIRED : NO_SESSION);
  }

  // The webhook secret: never in anything the owner can read, only with the master key.
  const ownerReads: [string, Reply][] = [
    ['the addMemoryBatch answer', submitted],
    ['getMemoryBatch', await answers.parse('/functions/getMemoryBatch', { token: owner.sessionToken, body: { batch_id: batchId } })],
    ['getMemoryBatchData', await answers.parse('/functions/getMemoryBatchData', { token: owner.sessionToken, body: { batch_id: batchId } })],
    ['cancelMemoryBatch (finished)', await answers.parse('/functions/cancelMemoryBatch', { token: owner.sessionToken, body: { batch_id: batchId } })],
    ['REST GET status', await answers.rest(`/memory/batch/${batchId}`, { token: owner.sessionToken })],
    ['REST GET results', await answers.rest(`/memory/batch/${batchId}/results`, { token: owner.sessionToken })],
    ['REST GET events', await answers.rest(`/memory/batch/${batchId}/events`, { token: owner.sessionToken })],
    ['Dashboard view: get', await answers.parse(`/classes/BatchMemoryRequest/${batchId}`, { token: owner.sessionToken })],
    ['Dashboard view: find', await answers.parse('/classes/BatchMemoryRequest', { token: owner.sessionToken })],
    ['Dashboard view: find selecting the protected fields', await answers.parse(`/classes/BatchMemoryRequest?keys=${BATCH_PROTECTED_FIELDS.join(',')}`, { token: owner.sessionToken })],
  ];
  const leaks: string[] = [];
  for (const [read, reply] of ownerReads) {
    if (reply.status !== 200) wrong.push(`${read} as the owner: status ${reply.status} — ${reply.text.slice(0, 200)}`);
    if (reply.text.includes(webhookSecret)) leaks.push(read);
    // The Dashboard's non-master views: no protected field at all, not even its name.
    if (read.startsWith('Dashboard')) for (const field of BATCH_PROTECTED_FIELDS) if (reply.text.includes(`"${field}"`)) leaks.push(`${read}: ${field}`);
  }
  // Each read answered with the batch (the results stream: one line per memory).
  expect(ownerReads.filter(([read, reply]) => !reply.text.includes(read === 'REST GET results' ? '"index":30' : batchId)).map(([read]) => read)).toEqual([]);
  // A query on the secret would answer whether a guess is right: it must find nothing.
  const oracle = await answers.parse(`/classes/BatchMemoryRequest?${where({ webhookSecret })}`, { token: owner.sessionToken });
  expectRefusal('the owner querying by the webhook secret', oracle, FORBIDDEN);
  const withMaster = await answers.parse(`/classes/BatchMemoryRequest/${batchId}`, { master: true });
  expect(withMaster.body.webhookSecret).toBe(webhookSecret);

  // LiveQuery: the other user's subscription is alive (it receives its own batch's events) and sees
  // nothing of the owner's; the owner's sees its batch without the secret or any protected field.
  const ownBatch = await answers.parse('/functions/addMemoryBatch', { ...asOther, body: { memories: memories(2) } });
  expect(ownBatch.status).toBe(200);
  const otherBatchId: string = ownBatch.body.result.batch_id;
  P.liveQueryServerURL = stackInfo().serverURL.replace(/^http/, 'ws');
  const otherSaw: string[] = [];
  const ownerSaw: Record<string, unknown>[] = [];
  // Closed whatever happens: an open socket would keep jest from exiting.
  try {
    const subscription = await new P.Query('BatchMemoryRequest').subscribe(other.sessionToken);
    for (const event of ['create', 'update', 'enter', 'leave', 'delete']) subscription.on(event, (object: Parse.Object) => otherSaw.push(object.id as string));
    const ownerSubscription = await new P.Query('BatchMemoryRequest').equalTo('objectId', batchId).subscribe(owner.sessionToken);
    ownerSubscription.on('update', (object: Parse.Object) => ownerSaw.push(object.toJSON()));
    batch.set('expiresAt', new Date(Date.now() + 86_400_000));
    await batch.save(null, master);
    await waitFor('the owner to see the update of their batch', async () => ownerSaw.length > 0, 20_000);
    // Saved after the owner's batch: once the other user sees this, any event of the owner's batch would have arrived first.
    const otherBatch = await getBatch(otherBatchId);
    otherBatch.set('expiresAt', new Date(Date.now() + 86_400_000));
    await otherBatch.save(null, master);
    await waitFor('the other user to see the update of their own batch', async () => otherSaw.includes(otherBatchId), 20_000);
  } finally {
    await P.LiveQuery.close();
  }
  attempts++;
  if (otherSaw.some((id) => id !== otherBatchId)) wrong.push(`LiveQuery as another user saw ${otherSaw.filter((id) => id !== otherBatchId).join(', ')}`);
  for (const object of ownerSaw) {
    const text = JSON.stringify(object);
    if (text.includes(webhookSecret)) leaks.push('LiveQuery update to the owner');
    for (const field of BATCH_PROTECTED_FIELDS) if (field in object) leaks.push(`LiveQuery update to the owner: ${field}`);
  }

  const serverErrors = attacker.serverErrors + answers.serverErrors;
  recordScenario({ scenario: `access: ${attempts} read paths as another user and anonymous`, faults: 0, badInputs: attempts, serverErrors, lost: 0, duplicated: 0 });
  recordAttack({
    attack: `another user and an anonymous client on ${attempts} read paths of a batch (Parse classes, files, REST route, Cloud Functions, LiveQuery)`,
    requests: attacker.statuses.length,
    answers: tally(attacker.statuses),
    refused: wrong.length === 0,
  });
  const secretReads = ownerReads.length + ownerSaw.length;
  const leakedReads = new Set(leaks.map((leak) => leak.split(':')[0])).size;
  recordAttack({
    attack: `the owner reading a batch's webhook secret (${ownerReads.length} answers, LiveQuery updates, a query on it)`,
    requests: secretReads + 1,
    answers: { 'secret hidden': secretReads - leakedReads, 'secret shown': leakedReads, [`query on it: ${oracle.status}`]: 1 },
    refused: leaks.length === 0 && !differs(oracle, FORBIDDEN),
  });
  expect(wrong).toEqual([]);
  expect(leaks).toEqual([]);
  expect(serverErrors).toBe(0);
  expect((await getBatch(batchId)).get('status')).toBe('completed');
});

test('a user name or email another user holds in another letter case is refused at sign-up, on both databases', async () => {
  const api = stackApi(stackInfo());
  const id = Math.random().toString(36).slice(2);
  const signUp = (username: string, email: string) => api.call('/parse/users', { body: { username, email, password: 'test-password-123' } });
  expect((await signUp(`Case-${id}`, `Case-${id}@example.com`)).status).toBe(201);
  const attempts: { status: number; code?: number }[] = [];
  await recordAttackChecked(
    () => ({ attack: 'sign-up with a user name or email another user holds, in another letter case', requests: attempts.length, answers: tally(attempts.map(({ status }) => status)) }),
    async () => {
      for (const [username, email] of [
        [`case-${id}`, `other-${id}@example.com`],
        [`other-${id}`, `CASE-${id}@EXAMPLE.COM`],
      ]) {
        const answer = await signUp(username, email);
        attempts.push({ status: answer.status, code: answer.body.code });
      }
      // Parse's USERNAME_TAKEN and EMAIL_TAKEN.
      expect(attempts).toEqual([
        { status: 400, code: 202 },
        { status: 400, code: 203 },
      ]);
    },
  );
});
