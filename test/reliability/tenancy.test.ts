/**
 * Tenancy attacks (issue 14, items 1, 2, 3, 8 and 11), sent as a second account or an anonymous client
 * would: each is refused with its exact answer, and nothing is stored in, or leaked from, the other
 * organization — rows counted with the master key, and the other organization's members see nothing
 * through /parse/classes or a LiveQuery subscription that is proven alive by its own events.
 */
import { Client } from 'pg';
import { postgresOnlyTest } from '../support/database';
import { memories, parse, waitFor } from '../support/helpers';
import { joinOrganization } from '../support/organizations';
import { stackInfo } from '../support/stackInfo';
import { startWebhookReceiver } from '../support/webhookReceiver';
import { type Answer, recordAttack, stackApi, tally } from './stackApi';

const api = stackApi(stackInfo());
const pointer = (className: string, objectId: string) => ({ __type: 'Pointer', className, objectId });
const userPointer = (id: string) => pointer('_User', id);

type Account = { id: string; token: string };

/** A batch through the REST route, as the user of `token`. */
function submit(token: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Answer> {
  return api.call('/api/v1/memory/batch', { body: { memories: memories(2), ...body }, token, headers });
}

/** The organization a finished batch was stored in. */
async function organizationOf(batchId: string): Promise<string> {
  return ((await api.batch(batchId)).organization as { objectId: string }).objectId;
}

/** The requests of one attack: `send` awaits each and keeps its answer, for recordAttack. */
function attackRequests() {
  const answers: Answer[] = [];
  const send = async (request: Promise<Answer>): Promise<Answer> => {
    const answer = await request;
    answers.push(answer);
    return answer;
  };
  return { answers, send };
}

interface LiveEvent {
  op: string;
  id: string;
  object: Parse.Object;
}

/** A LiveQuery subscription on BatchMemoryRequest as one user, recording every event it receives. */
async function watchBatches(token: string) {
  const P = parse();
  P.liveQueryServerURL = stackInfo().serverURL.replace(/^http/, 'ws');
  const events: LiveEvent[] = [];
  const subscription = await new P.Query('BatchMemoryRequest').subscribe(token);
  for (const op of ['create', 'update', 'enter']) subscription.on(op as 'create', (object: Parse.Object) => events.push({ op, id: object.id as string, object }));
  return {
    events,
    /** Waits until an event of `batchId` arrived (so the subscription is alive and caught up to that save). */
    sawBatch: (batchId: string, predicate: (event: LiveEvent) => boolean = () => true) =>
      waitFor(`a LiveQuery event of batch ${batchId}`, async () => events.find((event) => event.id === batchId && predicate(event)), 60_000),
    close: () => subscription.unsubscribe(),
  };
}

/** Rows counted with the master key through a route of their own (`/parse/roles`, `/parse/users`). */
async function countAt(route: string, where: object): Promise<number> {
  const answer = await api.call(`${route}?where=${encodeURIComponent(JSON.stringify(where))}&count=1&limit=0`, { master: true });
  expect(answer.status).toBe(200);
  return answer.body.count;
}

/** Batches as a user lists them through /parse/classes. */
async function listedBatches(token: string, where: object = {}): Promise<Record<string, unknown>[]> {
  const answer = await api.call(`/parse/classes/BatchMemoryRequest?where=${encodeURIComponent(JSON.stringify(where))}&limit=1000`, { token });
  expect(answer.status).toBe(200);
  return answer.body.results;
}

let victim: Account;
let colleague: Account;
let organizationB: string;

beforeAll(async () => {
  victim = await api.signUp('victim');
  colleague = await api.signUp('colleague');
  const first = await submit(victim.token, {});
  expect(first.status).toBe(200);
  organizationB = await organizationOf(first.body.batch_id);
  await joinOrganization(api, colleague.id, organizationB);
});

afterAll(async () => {
  await parse().LiveQuery.close();
});

test('item 1: a second account cannot move itself into another organization, by pointer, sign-up, workspace_id or a pointer it holds', async () => {
  const attacker = await api.signUp('attacker');
  const workspace = await api.call('/parse/classes/Workspace', {
    master: true,
    body: { name: 'shared workspace', organization: pointer('Organization', organizationB), ACL: { [`role:org_${organizationB}`]: { read: true } } },
  });
  expect(workspace.status).toBe(201);
  const workspaceId = workspace.body.objectId as string;
  const watch = await watchBatches(victim.token);
  const namespacesBefore = await api.count('Namespace', { organization: pointer('Organization', organizationB) });
  try {
    // The subscription is alive: it receives the victim's own batch.
    const own = await submit(victim.token, {});
    await watch.sawBatch(own.body.batch_id);
    // A member (added by the operator) still writes into the shared workspace.
    const member = await submit(colleague.token, { workspace_id: workspaceId });
    expect(member.status).toBe(200);
    expect((await api.batch(member.body.batch_id)).workspace).toMatchObject({ objectId: workspaceId });

    const { answers, send } = attackRequests();
    const setOwn = await send(api.call(`/parse/users/${attacker.id}`, { method: 'PUT', token: attacker.token, body: { organization: pointer('Organization', organizationB) } }));
    const unknown = await send(api.call(`/parse/users/${attacker.id}`, { method: 'PUT', token: attacker.token, body: { organization: pointer('Organization', 'noSuchOrg0001') } }));
    const username = `attacker-signup-${Math.random().toString(36).slice(2)}`;
    const signUp = await send(api.call('/parse/users', { body: { username, password: 'test-password-123', organization: pointer('Organization', organizationB) } }));
    const foreignWorkspace = await send(submit(attacker.token, { workspace_id: workspaceId }));
    const unknownWorkspace = await send(submit(attacker.token, { workspace_id: 'noSuchWorkspace1' }));
    // A pointer set before this was refused (or by an operator's mistake) gives no membership: the role decides.
    expect((await api.call(`/parse/users/${attacker.id}`, { method: 'PUT', master: true, body: { organization: pointer('Organization', organizationB) } })).status).toBe(200);
    const heldPointer = await send(submit(attacker.token, {}));
    const heldPointerFunction = await send(api.call('/parse/functions/addMemoryBatch', { token: attacker.token, body: { memories: memories(2) } }));
    expect((await api.call(`/parse/users/${attacker.id}`, { method: 'PUT', master: true, body: { organization: pointer('Organization', 'noSuchOrg0001') } })).status).toBe(200);
    const danglingPointer = await send(submit(attacker.token, {}));

    const attackerBatches = await api.count('BatchMemoryRequest', { user: userPointer(attacker.id) });
    const storedInB = await api.count('BatchMemoryRequest', { user: userPointer(attacker.id), organization: pointer('Organization', organizationB) });
    const memoriesInB = await api.count('Memory', { user: userPointer(attacker.id), organization: pointer('Organization', organizationB) });
    const signedUp = await countAt('/parse/users', { username });
    const namespacesAfter = await api.count('Namespace', { organization: pointer('Organization', organizationB) });
    const listedByVictim = await listedBatches(victim.token, { user: userPointer(attacker.id) });
    // A save after the attack: once the victim's subscription has it, it has had every earlier event.
    const fence = await submit(victim.token, {});
    await watch.sawBatch(fence.body.batch_id);
    const leakedLive = watch.events.filter((event) => (event.object.get('user') as Parse.User).id === attacker.id);

    const refused =
      setOwn.status === 400 &&
      setOwn.body.code === 119 &&
      unknown.status === 400 &&
      unknown.body.code === 119 &&
      signUp.status === 400 &&
      signUp.body.code === 119 &&
      foreignWorkspace.status === 400 &&
      foreignWorkspace.body.error?.details?.[0]?.field === 'workspace_id' &&
      unknownWorkspace.status === 400 &&
      unknownWorkspace.body.error?.details?.[0]?.field === 'workspace_id' &&
      heldPointer.status === 403 &&
      heldPointerFunction.status === 400 &&
      heldPointerFunction.body.code === 119 &&
      danglingPointer.status === 404 &&
      attackerBatches + storedInB + memoriesInB + signedUp + listedByVictim.length + leakedLive.length === 0 &&
      namespacesAfter === namespacesBefore;
    recordAttack({
      attack: 'cross-tenant write: own _User.organization, sign-up, workspace_id, held pointer (item 1)',
      requests: answers.length,
      answers: tally(answers.map((a) => a.status)),
      refused,
    });

    expect(setOwn).toMatchObject({ status: 400, body: { code: 119 } });
    expect(unknown).toMatchObject({ status: 400, body: { code: 119 } });
    expect(signUp).toMatchObject({ status: 400, body: { code: 119 } });
    expect(foreignWorkspace).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', details: [{ field: 'workspace_id' }] } } });
    expect(unknownWorkspace).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', details: [{ field: 'workspace_id' }] } } });
    expect(heldPointer).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
    expect(heldPointer.body.error.message).toContain(organizationB);
    expect(heldPointerFunction).toMatchObject({ status: 400, body: { code: 119 } });
    expect(danglingPointer).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect({ attackerBatches, storedInB, memoriesInB, signedUp, listedByVictim, leakedLive: leakedLive.length }).toEqual({
      attackerBatches: 0,
      storedInB: 0,
      memoriesInB: 0,
      signedUp: 0,
      listedByVictim: [],
      leakedLive: 0,
    });
    expect(namespacesAfter).toBe(namespacesBefore);
  } finally {
    await watch.close();
  }
});

// The audit of what the database received is a PostgreSQL trigger.
postgresOnlyTest('item 2: no Organization row is ever stored without its ACL, so a poller sees only its own organization', async () => {
  const poller = await api.signUp('poller');
  const own = await submit(poller.token, {});
  const ownOrganization = await organizationOf(own.body.batch_id);
  // Every insert and update of an Organization row, as the database received it (not only as it ends up).
  const database = new Client({ connectionString: stackInfo().databaseURI });
  await database.connect();
  const audit = `tenancy_audit_${process.pid}`;
  await database.query(`CREATE TABLE ${audit} (id text, op text, rperm text[])`);
  await database.query(`CREATE FUNCTION ${audit}_record() RETURNS trigger AS $$ BEGIN INSERT INTO ${audit} VALUES (NEW."objectId", TG_OP, NEW."_rperm"); RETURN NEW; END $$ LANGUAGE plpgsql`);
  await database.query(`CREATE TRIGGER ${audit} AFTER INSERT OR UPDATE ON "Organization" FOR EACH ROW EXECUTE FUNCTION ${audit}_record()`);
  try {
    const statuses: number[] = [];
    const seen = new Set<string>();
    let creating = true;
    const poll = async () => {
      while (creating) {
        const answer = await api.call('/parse/classes/Organization?limit=1000', { token: poller.token });
        statuses.push(answer.status);
        for (const row of answer.body.results ?? []) seen.add(row.objectId);
      }
    };
    const pollers = [poll(), poll()];
    const newcomers = await Promise.all(Array.from({ length: 8 }, () => api.signUp('newcomer')));
    const created = await Promise.all(newcomers.map((newcomer) => submit(newcomer.token, {}, { Prefer: 'respond-async' })));
    creating = false;
    await Promise.all(pollers);
    const organizations = await Promise.all(created.map((answer) => organizationOf(answer.body.batch_id)));

    const { rows } = await database.query<{ id: string; op: string; rperm: string[] | null }>(`SELECT id, op, rperm FROM ${audit} WHERE id = ANY($1)`, [organizations]);
    const inserts = rows.filter((row) => row.op === 'INSERT');
    const withoutACL = rows.filter((row) => row.rperm === null || row.rperm.includes('*'));
    const leaked = [...seen].filter((id) => id !== ownOrganization);
    const refused = statuses.every((status) => status === 200) && leaked.length === 0 && withoutACL.length === 0;
    recordAttack({ attack: 'poll GET /parse/classes/Organization while organizations are created (item 2)', requests: statuses.length, answers: tally(statuses), refused });

    expect(created.map((answer) => answer.status)).toEqual(Array(8).fill(202));
    expect(inserts).toHaveLength(8);
    expect(withoutACL).toEqual([]);
    expect(leaked).toEqual([]);
    expect(new Set(statuses)).toEqual(new Set([200]));
    expect(seen).toEqual(new Set([ownOrganization]));
  } finally {
    await database.query(`DROP TRIGGER IF EXISTS ${audit} ON "Organization"`);
    await database.query(`DROP FUNCTION IF EXISTS ${audit}_record()`);
    await database.query(`DROP TABLE IF EXISTS ${audit}`);
    await database.end();
  }
});

test('item 3: _Role is closed to clients; a planted org_<id> role gives no membership the server did not record', async () => {
  const attacker = await api.signUp('role-attacker');
  const plant = { name: `org_${organizationB}x`, ACL: { '*': { read: true, write: true } }, users: { __op: 'AddRelation', objects: [userPointer(attacker.id)] } };
  const { answers, send } = attackRequests();
  const createAnonymous = await send(api.call('/parse/roles', { body: plant }));
  const createAsUser = await send(api.call('/parse/roles', { body: plant, token: attacker.token }));
  const listAnonymous = await send(api.call('/parse/roles'));
  const listAsUser = await send(api.call('/parse/roles', { token: attacker.token }));
  const roleB = (await api.call(`/parse/roles?where=${encodeURIComponent(JSON.stringify({ name: `org_${organizationB}` }))}`, { master: true })).body.results[0];
  const getAsUser = await send(api.call(`/parse/roles/${roleB.objectId}`, { token: attacker.token }));
  const joinAsUser = await send(api.call(`/parse/roles/${roleB.objectId}`, { method: 'PUT', token: attacker.token, body: { users: { __op: 'AddRelation', objects: [userPointer(attacker.id)] } } }));

  // An organization whose role the server never created (one made outside it, as an open _Role
  // allowed): a role of that name holding the attacker is not the server's record of its members.
  const planted = await api.call('/parse/classes/Organization', { master: true, body: { name: 'planted', ACL: {} } });
  const plantedRole = await api.call('/parse/roles', { master: true, body: { name: `org_${planted.body.objectId}`, ACL: {}, users: { __op: 'AddRelation', objects: [userPointer(attacker.id)] } } });
  expect(plantedRole.status).toBe(201);
  expect((await api.call(`/parse/users/${attacker.id}`, { method: 'PUT', master: true, body: { organization: pointer('Organization', planted.body.objectId) } })).status).toBe(200);
  const writeWithPlantedRole = await send(submit(attacker.token, {}));

  const plantedByClients = await countAt('/parse/roles', { name: plant.name });
  const attackerRoles = await countAt('/parse/roles', { users: userPointer(attacker.id) });
  const attackerBatches = await api.count('BatchMemoryRequest', { user: userPointer(attacker.id) });
  const membersOfB = await api.call(`/parse/users?where=${encodeURIComponent(JSON.stringify({ $relatedTo: { object: pointer('_Role', roleB.objectId), key: 'users' } }))}`, { master: true });
  const attackerInB = membersOfB.body.results.some((user: { objectId: string }) => user.objectId === attacker.id);
  const forbidden = (answer: Answer) => answer.status === 400 && answer.body.code === 119;
  const refused =
    [createAnonymous, createAsUser, listAnonymous, listAsUser, getAsUser, joinAsUser].every(forbidden) &&
    writeWithPlantedRole.status === 403 &&
    plantedByClients === 0 &&
    attackerRoles === 1 &&
    attackerBatches === 0 &&
    !attackerInB;
  recordAttack({
    attack: 'create, list, read and join _Role as anonymous / second account; planted org_<id> role (item 3)',
    requests: answers.length,
    answers: tally(answers.map((a) => a.status)),
    refused,
  });

  for (const answer of [createAnonymous, createAsUser, listAnonymous, listAsUser, getAsUser, joinAsUser]) expect(answer).toMatchObject({ status: 400, body: { code: 119 } });
  expect(writeWithPlantedRole).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
  expect(plantedByClients).toBe(0);
  expect(attackerRoles).toBe(1);
  expect(attackerBatches).toBe(0);
  expect(attackerInB).toBe(false);
});

test("Parse's other system classes are closed to clients: no row, no listing, no new column, anonymous or signed in", async () => {
  const user = await api.signUp('system-class-attacker');
  const { answers, send } = attackRequests();
  const classes = ['_Product', '_Audience', '_PushStatus', '_JobStatus', '_JobSchedule', '_Hooks', '_GlobalConfig', '_GraphQLConfig', '_Idempotency'];
  const refusals: Answer[] = [];
  const grown: string[] = [];
  for (const className of classes) {
    for (const token of [undefined, user.token]) {
      refusals.push(await send(api.call(`/parse/classes/${className}`, { body: { productIdentifier: `attacker-${process.pid}`, inventedColumn: 'grown' }, token })));
      refusals.push(await send(api.call(`/parse/classes/${className}`, { token })));
    }
    const schema = await api.call(`/parse/schemas/${className}`, { master: true });
    if (Object.keys(schema.body.fields ?? {}).includes('inventedColumn')) grown.push(className);
  }
  const forbidden = (answer: Answer) => answer.status === 400 && answer.body.code === 119;
  recordAttack({
    attack: `Parse's system classes (${classes.join(', ')}): create with an invented column and list, anonymous and as a user`,
    requests: answers.length,
    answers: tally(answers.map((a) => a.status)),
    refused: refusals.every(forbidden) && grown.length === 0,
  });
  expect(refusals.filter((answer) => !forbidden(answer)).map((answer) => answer.status)).toEqual([]);
  expect(grown).toEqual([]);
});

test('_Installation is closed to clients: no install, no listing, no new column, anonymous or signed in', async () => {
  const user = await api.signUp('installation-attacker');
  const installation = { deviceType: 'android', installationId: `attacker-${process.pid}`, inventedColumn: 'grown' };
  const { answers, send } = attackRequests();
  const createAnonymous = await send(api.call('/parse/installations', { body: installation }));
  const createAsUser = await send(api.call('/parse/installations', { body: { ...installation, installationId: `attacker-user-${process.pid}` }, token: user.token }));
  const listAnonymous = await send(api.call('/parse/installations'));
  const schema = await api.call('/parse/schemas/_Installation', { master: true });
  const stored = await countAt('/parse/installations', { deviceType: 'android' });
  const grown = Object.keys(schema.body.fields ?? {}).includes('inventedColumn');
  const forbidden = (answer: Answer) => answer.status === 400 && answer.body.code === 119;
  recordAttack({
    attack: '_Installation: create with an invented column and list, anonymous and as a user',
    requests: answers.length,
    answers: tally(answers.map((a) => a.status)),
    refused: [createAnonymous, createAsUser, listAnonymous].every(forbidden) && stored === 0 && !grown,
  });
  for (const answer of [createAnonymous, createAsUser, listAnonymous]) expect(answer).toMatchObject({ status: 400, body: { code: 119 } });
  expect(stored).toBe(0);
  expect(grown).toBe(false);
});

test("item 8: an organization member reads a batch's status but cannot cancel, retry, delete or read the stored memories or per-item results of another member's batch", async () => {
  const P = parse();
  const running = await submit(victim.token, { memories: memories(30, 200, () => ({ metadata: { test_slow_ms: 500 } })) }, { Prefer: 'respond-async' });
  expect(running.status).toBe(202);
  const batchId = running.body.batch_id as string;
  const failedItems = await submit(victim.token, { memories: [...memories(3), { content: 'refused', metadata: { test_reject: 'yes' } }] });
  expect(failedItems.status).toBe(207);
  const finishedId = failedItems.body.batch_id as string;
  const retriesBefore = await api.count('BatchMemoryRequest', { retryOf: pointer('BatchMemoryRequest', finishedId) });

  const { answers, send } = attackRequests();
  const cancelFunction = await send(api.call('/parse/functions/cancelMemoryBatch', { token: colleague.token, body: { batch_id: batchId } }));
  const cancelRest = await send(api.call(`/api/v1/memory/batch/${batchId}/cancel`, { method: 'POST', token: colleague.token }));
  const dataFunction = await send(api.call('/parse/functions/getMemoryBatchData', { token: colleague.token, body: { batch_id: batchId } }));
  const finishedData = await send(api.call('/parse/functions/getMemoryBatchData', { token: colleague.token, body: { batch_id: finishedId } }));
  const retryFunction = await send(api.call('/parse/functions/retryMemoryBatch', { token: colleague.token, body: { batch_id: finishedId } }));
  const retryRest = await send(api.call(`/api/v1/memory/batch/${finishedId}/retry`, { method: 'POST', token: colleague.token }));
  const resultsRest = await send(api.call(`/api/v1/memory/batch/${finishedId}/results`, { token: colleague.token }));
  const deleteFunction = await send(api.call('/parse/functions/deleteMemoryBatch', { token: colleague.token, body: { batch_id: finishedId } }));
  const deleteRest = await send(api.call(`/api/v1/memory/batch/${finishedId}`, { method: 'DELETE', token: colleague.token }));
  // What a member may do: read the status.
  const status = await api.call(`/api/v1/memory/batch/${batchId}`, { token: colleague.token });
  const statusFunction = await api.call('/parse/functions/getMemoryBatch', { token: colleague.token, body: { batch_id: finishedId } });

  const stillRunning = (await api.batch(batchId)).status as string;
  const finishedStatus = (await api.batch(finishedId)).status as string;
  const retriesAfter = await api.count('BatchMemoryRequest', { retryOf: pointer('BatchMemoryRequest', finishedId) });
  const leakedContent = answers.some((answer) => JSON.stringify(answer.body).includes('Memory 0:'));
  const memoriesReadable = await new P.Query('Memory').equalTo('batch', P.Object.fromJSON({ className: 'BatchMemoryRequest', objectId: finishedId })).count({ sessionToken: colleague.token });
  const forbiddenFunction = (answer: Answer) => answer.status === 400 && answer.body.code === 119;
  const refused =
    [cancelFunction, dataFunction, finishedData, retryFunction, deleteFunction].every(forbiddenFunction) &&
    cancelRest.status === 403 &&
    deleteRest.status === 403 &&
    retryRest.status === 403 &&
    resultsRest.status === 403 &&
    statusFunction.body.result?.results?.length === 0 &&
    stillRunning !== 'cancelled' &&
    finishedStatus === 'completed' &&
    retriesAfter === retriesBefore &&
    !leakedContent &&
    memoriesReadable === 0;
  recordAttack({
    attack: "organization member cancels, retries, deletes and reads the stored memories or per-item results of another member's batch (item 8)",
    requests: answers.length,
    answers: tally(answers.map((a) => a.status)),
    refused,
  });

  // The owner still can (and stops the long batch).
  const ownerCancel = await api.call(`/api/v1/memory/batch/${batchId}/cancel`, { method: 'POST', token: victim.token });
  const ownerData = await api.call('/parse/functions/getMemoryBatchData', { token: victim.token, body: { batch_id: finishedId } });

  for (const answer of [cancelFunction, dataFunction, finishedData, retryFunction, deleteFunction]) expect(answer).toMatchObject({ status: 400, body: { code: 119 } });
  expect(cancelRest).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
  expect(deleteRest).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
  expect(retryRest).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
  expect(resultsRest).toMatchObject({ status: 403, body: { error: { code: 'forbidden' } } });
  expect(stillRunning).not.toBe('cancelled');
  expect(finishedStatus).toBe('completed');
  expect(retriesAfter).toBe(retriesBefore);
  expect(leakedContent).toBe(false);
  expect(memoriesReadable).toBe(0);
  expect(status).toMatchObject({ status: 200, body: { batch_id: batchId, total: 30 } });
  expect(statusFunction).toMatchObject({ status: 200, body: { result: { batch_id: finishedId, status: 'completed', failed: 1, results: [] } } });
  expect(ownerCancel).toMatchObject({ status: 200, body: { status: 'cancelled' } });
  expect(ownerData.status).toBe(200);
  expect(ownerData.body.result.memories).toHaveLength(4);
});

test('item 11: webhookUrl and idempotencyKey of a batch are hidden from organization members in /parse/classes and LiveQuery; the owner keeps them', async () => {
  const hook = await startWebhookReceiver();
  const webhookUrl = `${hook.url}?secret-path-token`;
  const memberWatch = await watchBatches(colleague.token);
  const ownerWatch = await watchBatches(victim.token);
  try {
    const submitted = await submit(victim.token, { webhook_url: webhookUrl, webhook_secret: 'webhook-secret-of-this-test-0123' }, { 'Idempotency-Key': 'tenancy-item-11' });
    expect(submitted.status).toBe(200);
    const batchId = submitted.body.batch_id as string;
    // Both subscriptions are alive: each has received this batch's events.
    const ownerEvent = await ownerWatch.sawBatch(batchId, (event) => event.object.get('status') === 'completed');
    await memberWatch.sawBatch(batchId, (event) => event.object.get('status') === 'completed');

    const hidden = ['webhookUrl', 'idempotencyKey', 'batchFile', 'resultsFile', 'partsKey', 'webhookSecret', 'requestHash'];
    const memberGet = await api.call(`/parse/classes/BatchMemoryRequest/${batchId}`, { token: colleague.token });
    const memberFind = await api.call(`/parse/classes/BatchMemoryRequest?where=${encodeURIComponent(JSON.stringify({ objectId: batchId }))}`, { token: colleague.token });
    const memberQueryOnUrl = await api.call(`/parse/classes/BatchMemoryRequest?where=${encodeURIComponent(JSON.stringify({ webhookUrl: { $regex: '^http' } }))}`, { token: colleague.token });
    const memberLive = memberWatch.events.filter((event) => event.id === batchId).map((event) => event.object.toJSON());
    const ownerGet = await api.call(`/parse/classes/BatchMemoryRequest/${batchId}`, { token: victim.token });
    const leakedFields = [memberGet.body, ...memberFind.body.results, ...memberLive].flatMap((row: Record<string, unknown>) => hidden.filter((field) => field in row));
    const answers = [memberGet, memberFind, memberQueryOnUrl];
    const refused = memberGet.status === 200 && memberFind.body.results.length === 1 && leakedFields.length === 0 && memberQueryOnUrl.status === 400;
    recordAttack({
      attack: 'organization member reads webhookUrl / idempotencyKey through /parse/classes and LiveQuery (item 11)',
      requests: answers.length + 1,
      answers: tally([...answers.map((a) => a.status), 'LiveQuery events without the fields']),
      refused,
    });

    expect(memberGet.status).toBe(200);
    expect(memberFind.body.results).toHaveLength(1);
    expect(memberLive.length).toBeGreaterThan(0);
    expect(leakedFields).toEqual([]);
    expect(memberQueryOnUrl).toMatchObject({ status: 400, body: { code: 119 } });
    // The owner sees what the owner saw before, except the fields protected from everyone.
    expect(ownerGet.body).toMatchObject({ webhookUrl, idempotencyKey: expect.any(String) });
    // LiveQuery applies only the list for everyone (Parse Server reads `userField:` lists for queries only): the owner reads these two there.
    for (const field of ['batchFile', 'resultsFile', 'partsKey', 'webhookSecret', 'requestHash']) {
      expect(ownerGet.body[field]).toBeUndefined();
      expect(ownerEvent.object.get(field)).toBeUndefined();
    }
  } finally {
    await memberWatch.close();
    await ownerWatch.close();
    await hook.close();
  }
});

test("the operator's path into a shared organization: made and joined with the master key, its members write into it and read each other's batches", async () => {
  const organization = await api.call('/parse/classes/Organization', { master: true, body: { name: 'shared team', ACL: {} } });
  expect(organization.status).toBe(201);
  const organizationId = organization.body.objectId as string;
  const role = await api.call('/parse/roles', { master: true, body: { name: `org_${organizationId}`, ACL: {} } });
  expect(role.status).toBe(201);
  const recorded = await api.call(`/parse/classes/Organization/${organizationId}`, {
    method: 'PUT',
    master: true,
    body: { role: pointer('_Role', role.body.objectId), ACL: { [`role:org_${organizationId}`]: { read: true } } },
  });
  expect(recorded.status).toBe(200);
  const [alice, bob, stranger] = await Promise.all([api.signUp('alice'), api.signUp('bob'), api.signUp('stranger')]);
  await joinOrganization(api, alice.id, organizationId);
  await joinOrganization(api, bob.id, organizationId);

  const fromAlice = await submit(alice.token, {});
  const fromBob = await submit(bob.token, { namespace: 'team notes' });
  expect([fromAlice.status, fromBob.status]).toEqual([200, 200]);
  expect([await organizationOf(fromAlice.body.batch_id), await organizationOf(fromBob.body.batch_id)]).toEqual([organizationId, organizationId]);
  const inOrganization = { organization: pointer('Organization', organizationId) };
  const seenByBob = (await listedBatches(bob.token, inOrganization)).map((row) => row.objectId);
  expect(new Set(seenByBob)).toEqual(new Set([fromAlice.body.batch_id, fromBob.body.batch_id]));
  expect((await api.call(`/parse/classes/Organization/${organizationId}`, { token: alice.token })).status).toBe(200);
  expect(await listedBatches(stranger.token, inOrganization)).toEqual([]);
  expect((await api.call(`/parse/classes/Organization/${organizationId}`, { token: stranger.token })).status).toBe(404);
});
