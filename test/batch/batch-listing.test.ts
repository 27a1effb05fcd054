/**
 * Listing a user's batches: newest first, filtered by status, namespace and creation time, a page at a time by a
 * cursor (`next_cursor`, given back as `after`) that stays put while batches are created: no batch is skipped or
 * repeated. The REST route, the Cloud Function, the MCP door and the CLI answer the same pages; nobody lists
 * another user's batches.
 */
import type { BatchListResponse } from '../../schema/memory';
import { SERVER, runCli } from '../client/cliProcess';
import { stackApi } from '../reliability/stackApi';
import { closeTemporal, parse } from '../support/helpers';
import { openApiProblems, postJson, rest } from '../support/rest';
import { stackInfo } from '../support/stackInfo';
import { McpClients } from '../support/mcpClient';

const mcp = new McpClients();
afterAll(async () => {
  await closeTemporal();
  await mcp.close();
});

const api = stackApi(stackInfo());
let owner: { id: string; token: string };
/** The owner's batches, oldest first: namespaces list-a, list-b, list-a, list-b, list-a; the third is cancelled. */
const created: string[] = [];

async function submit(namespace: string, extra: Record<string, unknown> = {}): Promise<string> {
  const answer = await postJson('/memory/batch', { memories: [{ content: `in ${namespace}` }], namespace, ...extra }, { token: owner.token });
  expect([200, 202]).toContain(answer.status);
  return answer.body.batch_id as string;
}

async function list(query: string, token = owner.token): Promise<BatchListResponse> {
  const answer = await rest(`/memory/batch?${query}`, { token });
  expect(answer.status).toBe(200);
  expect(await openApiProblems('BatchListResponse', answer.body)).toEqual([]);
  return answer.body as BatchListResponse;
}

const ids = (page: BatchListResponse) => page.batches.map((batch) => batch.batch_id);

beforeAll(async () => {
  owner = await api.signUp('listing');
  for (const [index, namespace] of ['list-a', 'list-b', 'list-a', 'list-b', 'list-a'].entries()) {
    if (index !== 2) {
      created.push(await submit(namespace));
      continue;
    }
    // Slow memories, cancelled while they run.
    const running = await submit(namespace, { wait: false, memories: Array.from({ length: 20 }, (_, i) => ({ content: `slow ${i}`, metadata: { test_slow_ms: 200 } })) });
    const cancelled = await rest(`/memory/batch/${running}/cancel`, { method: 'POST', token: owner.token });
    expect({ status: cancelled.status, batch: cancelled.body.status }).toEqual({ status: 200, batch: 'cancelled' });
    created.push(running);
  }
}, 120_000);

test('pages by cursor go from newest to oldest, each batch once, while new batches are created in between', async () => {
  const first = await list('limit=2');
  expect(ids(first)).toEqual(created.slice(-2).reverse());
  expect(first.next_cursor).toEqual(expect.any(String));
  // Two batches created after the first page: they are newer, so no later page shows them or shifts.
  const newer = [await submit('list-c'), await submit('list-c')];
  const second = await list(`limit=2&after=${first.next_cursor}`);
  const third = await list(`limit=2&after=${second.next_cursor}`);
  expect([...ids(first), ...ids(second), ...ids(third)]).toEqual([...created].reverse());
  expect(third.next_cursor).toBeUndefined();
  expect(second.next_offset).toBeUndefined();
  // A fresh first page starts with them.
  expect(ids(await list('limit=2'))).toEqual([...newer].reverse());
  // Paging by offset keeps its answer field.
  expect((await list('limit=2&offset=2')).next_offset).toBe(4);
});

test('filters by status, namespace and creation time, alone and together', async () => {
  const createdAt = async (id: string) => (await list('limit=100')).batches.find((batch) => batch.batch_id === id)?.created_at as string;
  expect(ids(await list('namespace=list-a'))).toEqual([created[4], created[2], created[0]]);
  expect(ids(await list('namespace=list-b&status=completed'))).toEqual([created[3], created[1]]);
  expect(ids(await list('status=cancelled'))).toEqual([created[2]]);
  const after = encodeURIComponent(await createdAt(created[1]));
  const before = encodeURIComponent(await createdAt(created[4]));
  expect(ids(await list(`namespace=list-a&created_after=${after}&created_before=${before}`))).toEqual([created[2]]);
  expect(ids(await list('namespace=no-such-namespace'))).toEqual([]);
  // Filters and cursor together.
  const first = await list('namespace=list-a&limit=1');
  expect(ids(await list(`namespace=list-a&limit=5&after=${first.next_cursor}`))).toEqual([created[2], created[0]]);
});

test("another user lists none of the owner's batches, whatever the filter or user_id; the master key lists them for user_id", async () => {
  const other = await api.signUp('listing-other');
  expect(ids(await list('namespace=list-a', other.token))).toEqual([]);
  const cursor = (await list('namespace=list-a&limit=1')).next_cursor as string;
  expect(ids(await list(`namespace=list-a&after=${cursor}`, other.token))).toEqual([]);
  // user_id is the master key's: from a user's session it names nobody, on the REST route and the Cloud Function alike.
  expect(ids(await list(`namespace=list-a&user_id=${owner.id}`, other.token))).toEqual([]);
  const viaCloud = (await parse().Cloud.run('listMemoryBatches', { namespace: 'list-a', user_id: owner.id }, { sessionToken: other.token })) as BatchListResponse;
  expect(viaCloud.batches).toEqual([]);
  const asMaster = await api.call(`/api/v1/memory/batch?namespace=list-a&user_id=${owner.id}`, { master: true });
  expect(asMaster.body.batches.map((batch: { batch_id: string }) => batch.batch_id)).toEqual([created[4], created[2], created[0]]);
});

test('the Cloud Function, the MCP door and the CLI answer the same pages as the REST route', async () => {
  const rested = await list('namespace=list-b&limit=1');
  const viaCloud = (await parse().Cloud.run('listMemoryBatches', { namespace: 'list-b', limit: 1 }, { sessionToken: owner.token })) as BatchListResponse;
  expect(viaCloud).toEqual(rested);
  const secondViaCloud = (await parse().Cloud.run('listMemoryBatches', { namespace: 'list-b', after: viaCloud.next_cursor }, { sessionToken: owner.token })) as BatchListResponse;
  expect(ids(secondViaCloud)).toEqual([created[1]]);

  const client = await mcp.connect('http', owner.token);
  try {
    const viaMcp = (await client.callTool({ name: 'list_batches', arguments: { namespace: 'list-b', limit: 1 } })) as unknown as { structuredContent: BatchListResponse };
    expect(viaMcp.structuredContent).toEqual(rested);
  } finally {
    await client.close();
  }

  const cli = await runCli(['list', '--namespace', 'list-b', '--limit', '1'], { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: owner.token });
  expect(cli.code).toBe(0);
  expect(JSON.parse(cli.stdout)).toEqual(rested);
  const next = await runCli(['list', '--namespace', 'list-b', '--after', rested.next_cursor as string], { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: owner.token });
  expect(ids(JSON.parse(next.stdout))).toEqual([created[1]]);
});

test('a bad filter or cursor is refused naming the field; the Cloud Function answers Parse error 142', async () => {
  const refusals = [];
  for (const query of ['after=not-a-cursor', 'after=abc.def&offset=2', 'status=finished', 'created_after=yesterday', 'limit=101']) {
    const answer = await rest(`/memory/batch?${query}`, { token: owner.token });
    refusals.push({ query, status: answer.status, field: answer.body.error?.details?.[0]?.path });
  }
  expect(refusals).toEqual([
    { query: 'after=not-a-cursor', status: 400, field: 'after' },
    { query: 'after=abc.def&offset=2', status: 400, field: 'after' },
    { query: 'status=finished', status: 400, field: 'status' },
    { query: 'created_after=yesterday', status: 400, field: 'created_after' },
    { query: 'limit=101', status: 400, field: 'limit' },
  ]);
  await expect(parse().Cloud.run('listMemoryBatches', { status: 'finished' }, { sessionToken: owner.token })).rejects.toMatchObject({ code: 142 });
});
