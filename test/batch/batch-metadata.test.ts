/**
 * A batch's own metadata: an optional JSON object (at most 16 keys and 4 KB) given on submit through every door
 * (Cloud Function, REST JSON, REST NDJSON's query string, MCP, the CLI), returned to its owner in status, listing,
 * retries and the webhook, and hidden from everyone else: a member of the owner's organization neither reads it nor
 * finds a batch by it.
 */
import { MAX_BATCH_METADATA_BYTES, MAX_BATCH_METADATA_KEYS, type BatchMemoryResponse } from '../../schema/memory';
import { webhookEventSchema } from '../../schema/webhook';
import { SERVER, runCli, summaryValue } from '../client/cliProcess';
import { stackApi } from '../reliability/stackApi';
import { addMemoryBatch, closeTemporal, master, parse, waitFor } from '../support/helpers';
import { joinOrganization } from '../support/organizations';
import { openApiProblems, postJson, rest } from '../support/rest';
import { stackInfo } from '../support/stackInfo';
import { startWebhookReceiver } from '../support/webhookReceiver';
import { McpClients } from '../support/mcpClient';

const mcp = new McpClients();
afterAll(async () => {
  await closeTemporal();
  await mcp.close();
});

const api = stackApi(stackInfo());
const METADATA = { project: 'q3-import', source: { system: 'crm', export: 7 }, reviewed: false, tags: ['a', 'b'] };

/** The metadata each of the owner's reads gives for a batch: REST status, listing, getMemoryBatch and MCP get_batch. */
async function metadataSeenBy(token: string, batchId: string) {
  const status = await rest(`/memory/batch/${batchId}`, { token });
  const listed = await rest('/memory/batch?limit=100', { token });
  const cloud = (await parse().Cloud.run('getMemoryBatch', { batch_id: batchId }, { sessionToken: token })) as BatchMemoryResponse;
  const client = await mcp.connect('http', token);
  try {
    const viaMcp = (await client.callTool({ name: 'get_batch', arguments: { batch_id: batchId } })) as { structuredContent?: { metadata?: unknown } };
    expect(await openApiProblems('BatchStatusResponse', status.body)).toEqual([]);
    return {
      status: status.body.metadata,
      listing: (listed.body.batches as { batch_id: string; metadata?: unknown }[]).find((batch) => batch.batch_id === batchId)?.metadata,
      cloudFunction: cloud.metadata,
      mcp: viaMcp.structuredContent?.metadata,
    };
  } finally {
    await client.close();
  }
}

const everywhere = (metadata: unknown) => ({ status: metadata, listing: metadata, cloudFunction: metadata, mcp: metadata });

async function ended(batchId: string): Promise<void> {
  await waitFor('the batch to end', async () => ['completed', 'failed', 'cancelled'].includes((await api.batch(batchId)).status as string) || undefined);
}

test('metadata given through the Cloud Function comes back in status, listing, getMemoryBatch, MCP, the webhook and the retry', async () => {
  const owner = await api.signUp('metadata-owner');
  const hook = await startWebhookReceiver();
  try {
    const answer = await addMemoryBatch(owner.token, {
      memories: [{ content: 'kept' }, { content: 'refused', metadata: { test_reject: 'no' } }],
      metadata: METADATA,
      webhook_url: hook.url,
      webhook_secret: 'batch-metadata-webhook-secret-0123',
    });
    expect(answer.metadata).toEqual(METADATA);
    expect(await metadataSeenBy(owner.token, answer.batch_id)).toEqual(everywhere(METADATA));
    const delivery = await waitFor('the webhook', async () => hook.deliveries[0], 60_000);
    expect(webhookEventSchema.parse(JSON.parse(delivery.body)).batch.metadata).toEqual(METADATA);

    const retry = await rest(`/memory/batch/${answer.batch_id}/retry`, { method: 'POST', token: owner.token });
    expect(retry.status).toBe(202);
    expect((await rest(`/memory/batch/${retry.body.batch_id}`, { token: owner.token })).body.metadata).toEqual(METADATA);
    await ended(retry.body.batch_id);
  } finally {
    await hook.close();
  }
});

test('metadata given as REST JSON, in the NDJSON query string, through MCP and by the CLI round-trips', async () => {
  const owner = await api.signUp('metadata-doors');
  const json = await postJson('/memory/batch', { memories: [{ content: 'json' }], metadata: { door: 'json' } }, { token: owner.token });
  expect(json.status).toBe(200);
  const ndjson = await rest(`/memory/batch?metadata=${encodeURIComponent(JSON.stringify({ door: 'ndjson', nested: { n: 1 } }))}`, {
    method: 'POST',
    token: owner.token,
    headers: { 'Content-Type': 'application/x-ndjson' },
    body: '{"content":"ndjson"}\n',
  });
  expect(ndjson.status).toBe(200);

  const client = await mcp.connect('http', owner.token);
  const viaMcp = (await client.callTool({ name: 'import_memories', arguments: { memories: [{ content: 'mcp' }], metadata: { door: 'mcp' }, wait: true } })) as unknown as {
    structuredContent: { batch_id: string };
  };
  await client.close();

  const cli = await runCli(['import', '-', '--metadata', '{"door":"cli"}'], { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: owner.token }, '{"content":"cli"}\n');
  expect(cli.code).toBe(0);
  const cliBatch = summaryValue(cli.stdout, 'batch') as string;

  const seen = async (batchId: string) => (await metadataSeenBy(owner.token, batchId)).status;
  expect({
    json: await seen(json.body.batch_id),
    ndjson: await seen(ndjson.body.batch_id),
    mcp: await seen(viaMcp.structuredContent.batch_id),
    cli: await seen(cliBatch),
  }).toEqual({ json: { door: 'json' }, ndjson: { door: 'ndjson', nested: { n: 1 } }, mcp: { door: 'mcp' }, cli: { door: 'cli' } });
});

test("a member of the owner's organization neither reads a batch's metadata nor finds the batch by it", async () => {
  const owner = await api.signUp('metadata-private');
  const member = await api.signUp('metadata-member');
  const answer = await addMemoryBatch(owner.token, { memories: [{ content: 'private' }], metadata: { client: 'acme-secret' } });
  const organization = ((await api.batch(answer.batch_id)).organization as { objectId: string }).objectId;
  await joinOrganization(api, member.id, organization);

  // The member reads the batch's status and counts, without its metadata.
  const status = await rest(`/memory/batch/${answer.batch_id}`, { token: member.token });
  expect(status.status).toBe(200);
  expect(status.text).not.toContain('acme-secret');
  const cloud = (await parse().Cloud.run('getMemoryBatch', { batch_id: answer.batch_id }, { sessionToken: member.token })) as BatchMemoryResponse;
  expect({ batch: cloud.batch_id, metadata: cloud.metadata }).toEqual({ batch: answer.batch_id, metadata: undefined });
  const row = await api.call(`/parse/classes/BatchMemoryRequest/${answer.batch_id}`, { token: member.token });
  expect({ status: row.status, metadata: row.body.metadata }).toEqual({ status: 200, metadata: undefined });

  // Nor does a query on the metadata find it: Parse Server refuses a query on a field protected from the user.
  const byMetadata = await api.call(`/parse/classes/BatchMemoryRequest?where=${encodeURIComponent(JSON.stringify({ 'metadata.client': 'acme-secret' }))}`, { token: member.token });
  expect(byMetadata).toEqual({ status: 400, body: { code: 119, error: 'Permission denied' } });
  // The owner's own row carries it.
  expect((await api.call(`/parse/classes/BatchMemoryRequest/${answer.batch_id}`, { token: owner.token })).body.metadata).toEqual({ client: 'acme-secret' });
  expect(await new (parse().Query)('BatchMemoryRequest').equalTo('metadata.client', 'acme-secret').count(master)).toBe(1);
});

test('metadata over its limits, not an object, or with U+0000 is refused naming the field and limit; nothing is stored', async () => {
  const owner = await api.signUp('metadata-limits');
  const tooManyKeys = Object.fromEntries(Array.from({ length: MAX_BATCH_METADATA_KEYS + 1 }, (_, i) => [`k${i}`, i]));
  const tooLarge = { text: 'x'.repeat(MAX_BATCH_METADATA_BYTES) };
  const refusals = [];
  for (const metadata of [tooManyKeys, tooLarge, ['not', 'an', 'object'], { bad: 'a\u0000b' }]) {
    const answer = await postJson('/memory/batch', { memories: [{ content: 'a' }], metadata }, { token: owner.token });
    refusals.push({ status: answer.status, details: answer.body.error?.details?.map(({ path, limit }: { path: string; limit?: number }) => ({ path, limit })) });
  }
  expect(refusals).toEqual([
    { status: 400, details: [{ path: 'metadata', limit: MAX_BATCH_METADATA_KEYS }] },
    { status: 400, details: [{ path: 'metadata', limit: MAX_BATCH_METADATA_BYTES }] },
    { status: 400, details: [{ path: 'metadata', limit: undefined }] },
    { status: 400, details: [{ path: 'metadata.bad', limit: undefined }] },
  ]);
  const notJson = await rest('/memory/batch?metadata=%7Bnot-json', { method: 'POST', token: owner.token, headers: { 'Content-Type': 'application/x-ndjson' }, body: '{"content":"a"}\n' });
  expect({ status: notJson.status, path: notJson.body.error?.details?.[0]?.path }).toEqual({ status: 400, path: 'metadata' });
  expect(await api.count('BatchMemoryRequest', { user: { __type: 'Pointer', className: '_User', objectId: owner.id } })).toBe(0);
});
