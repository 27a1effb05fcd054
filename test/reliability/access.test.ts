/**
 * Load and access on the shared stack: ten users import at once and each sees only their own
 * memories and batches; through every read path, another user and an anonymous client get nothing,
 * and stored files need the master key.
 */
import { fileURL } from '../../schema/batchFile';
import { addMemoryBatch, countMemories, duplicateMemories, getBatch, http, master, memories, newUser, parse, type TestUser } from '../support/helpers';
import { REST, rest } from '../support/rest';
import { stackInfo } from '../support/stackInfo';
import { recordScenario } from './stackApi';

test('10 concurrent batches of 100 memories from 10 users: all succeed, each user sees only their own', async () => {
  const P = parse();
  const users = await Promise.all(Array.from({ length: 10 }, (_, i) => newUser(`concurrent${i}`)));
  const answers = await Promise.all(users.map((user, i) => addMemoryBatch(user.sessionToken, { memories: memories(100, 200, (index) => ({ metadata: { index, owner: i } })) })));
  let lost = 0;
  let duplicated = 0;
  for (const [i, answer] of answers.entries()) {
    expect(answer).toMatchObject({ success: true, status: 'completed', total: 100, processed: 100, failed: 0 });
    const rows = await countMemories(answer.batch_id);
    lost += 100 - rows;
    duplicated += await duplicateMemories(answer.batch_id);
    const own = await new P.Query('Memory').limit(1000).find({ sessionToken: users[i].sessionToken });
    expect(own).toHaveLength(100);
    expect(new Set(own.map((m) => m.get('metadata').owner))).toEqual(new Set([i]));
    const batches = await new P.Query('BatchMemoryRequest').find({ sessionToken: users[i].sessionToken });
    expect(batches.map((b) => b.id)).toEqual([answer.batch_id]);
  }
  recordScenario({ scenario: '10 users × 100 memories at once', faults: 0, badInputs: 0, serverErrors: 0, lost, duplicated });
  expect(lost).toBe(0);
  expect(duplicated).toBe(0);
});

test('every read path: another user and an anonymous client get nothing; files need the master key', async () => {
  const P = parse();
  const owner = await newUser('owner');
  const other: TestUser = await newUser('other');
  const answer = await addMemoryBatch(owner.sessionToken, { memories: [...memories(30), { content: 'refused', metadata: { test_reject: 'no' } }] });
  const batchId = answer.batch_id;
  const batch = await getBatch(batchId);
  const denied: string[] = [];
  let attempts = 0;
  const expectDenied = (path: string, outcome: boolean) => {
    attempts++;
    if (!outcome) denied.push(path);
  };
  const asOther = { sessionToken: other.sessionToken };
  const batchPointer = P.Object.fromJSON({ className: 'BatchMemoryRequest', objectId: batchId });

  // Parse classes through the SDK (queries, get, count) and raw REST.
  for (const className of ['BatchMemoryRequest', 'BatchMemoryPart', 'BatchMemoryChunk', 'Memory']) {
    expectDenied(`SDK find ${className} as another user`, (await new P.Query(className).find(asOther).catch(() => [])).length === 0);
    expectDenied(`SDK count ${className} as another user`, (await new P.Query(className).count(asOther).catch(() => 0)) === 0);
    const anonymous = await http(`/classes/${className}`);
    expectDenied(`REST /classes/${className} anonymous`, anonymous.status >= 400 || ((await anonymous.json()) as { results: unknown[] }).results.length === 0);
  }
  expectDenied('SDK get the batch as another user', (await new P.Query('BatchMemoryRequest').get(batchId, asOther).catch(() => undefined)) === undefined);
  expectDenied('SDK Memory of the batch as another user', (await new P.Query('Memory').equalTo('batch', batchPointer).count(asOther)) === 0);
  const ownerView = await new P.Query('BatchMemoryRequest').get(batchId, { sessionToken: owner.sessionToken });
  expectDenied('protected fields hidden from the owner', ['batchFile', 'resultsFile', 'partsKey', 'webhookSecret', 'requestHash'].every((field) => ownerView.get(field) === undefined));

  // Files: part and results files, by URL.
  const endpoint = { serverURL: stackInfo().serverURL, appId: stackInfo().appId, masterKey: stackInfo().masterKey };
  const parts = await new P.Query('BatchMemoryPart').equalTo('partsKey', batch.get('partsKey')).find(master);
  const urls = [...parts.map((part) => fileURL(endpoint, part.get('name'))), fileURL(endpoint, (batch.get('resultsFile') as Parse.File).name())];
  for (const url of urls) {
    expectDenied(`file ${url} anonymous`, (await fetch(url)).status === 403);
    expectDenied(`file ${url} as another user`, (await fetch(url, { headers: { 'X-Parse-Session-Token': other.sessionToken } })).status === 403);
    expectDenied(`file ${url} with the master key`, (await fetch(url, { headers: { 'X-Parse-Master-Key': endpoint.masterKey } })).status === 200);
  }

  // The REST route: status, results, events, cancel, retry.
  for (const [method, path] of [['GET', ''], ['GET', '/results'], ['GET', '/events'], ['POST', '/cancel'], ['POST', '/retry']]) {
    expectDenied(`${method} ${path || '/'} as another user`, (await rest(`/memory/batch/${batchId}${path}`, { method, token: other.sessionToken })).status === 404);
    expectDenied(`${method} ${path || '/'} anonymous`, (await fetch(`${REST}/memory/batch/${batchId}${path}`, { method })).status === 401);
  }

  // Cloud Functions.
  for (const name of ['getMemoryBatch', 'getMemoryBatchData', 'cancelMemoryBatch', 'retryMemoryBatch', 'dashboardCancelBatch', 'dashboardRetryFailedItems']) {
    const params = { batch_id: batchId, object: { __type: 'Object', className: 'BatchMemoryRequest', objectId: batchId } };
    expectDenied(`${name} as another user`, await P.Cloud.run(name, params, asOther).then(() => false, () => true));
    const anonymous = await http(`/functions/${name}`, { method: 'POST', body: JSON.stringify(params), headers: { 'Content-Type': 'application/json' } });
    expectDenied(`${name} anonymous`, anonymous.status >= 400);
  }

  // LiveQuery: another user's subscription sees nothing of a save to the batch.
  P.liveQueryServerURL = stackInfo().serverURL.replace(/^http/, 'ws');
  const seen: string[] = [];
  const subscription = await new P.Query('BatchMemoryRequest').subscribe(other.sessionToken);
  subscription.on('update', (object: Parse.Object) => seen.push(object.id as string));
  subscription.on('enter', (object: Parse.Object) => seen.push(object.id as string));
  const ownerSubscription = await new P.Query('BatchMemoryRequest').equalTo('objectId', batchId).subscribe(owner.sessionToken);
  const ownerSaw = new Promise<void>((resolve) => ownerSubscription.on('update', () => resolve()));
  batch.set('expiresAt', new Date(Date.now() + 86_400_000));
  await batch.save(null, master);
  await ownerSaw;
  expectDenied('LiveQuery as another user', seen.length === 0);
  subscription.unsubscribe();
  ownerSubscription.unsubscribe();
  await P.LiveQuery.close();

  recordScenario({ scenario: `access: ${attempts} read paths as another user and anonymous`, faults: 0, badInputs: attempts, serverErrors: 0, lost: 0, duplicated: 0 });
  expect(denied).toEqual([]);
  expect((await getBatch(batchId)).get('status')).toBe('completed');
});
