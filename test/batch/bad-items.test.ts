/**
 * Invariant 12: an item the database or a memory processor refuses fails alone. U+0000, which no database
 * here stores, is refused at submit on every door, naming the item and field, with nothing stored; a refusal
 * the validation cannot know (a CHECK constraint or unique index the host added on PostgreSQL, a unique index
 * on MongoDB) fails that item with the database's reason while its neighbours are stored exactly once; a
 * processor that throws for one item on every attempt fails that item after BATCH_ITEM_MAX_ATTEMPTS attempts,
 * counted in Temporal's history, and warns once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as PgClient } from 'pg';
import { loadConfig } from '../../config';
import type { BatchMemoryResponse, MemoryItem, MemoryProcessingResult } from '../../schema/memory';
import { SERVER } from '../client/cliProcess';
import { MongoClient } from 'mongodb';
import { mongoOnlyTest, postgresOnlyTest } from '../support/database';
import { startPrivateStack } from '../support/privateStack';
import { stackApi } from '../reliability/stackApi';
import { addMemoryBatch, closeTemporal, countMemories, duplicateMemories, master, memories, newUser, parse, temporal, storedBy, waitFor } from '../support/helpers';
import { postJson, rest } from '../support/rest';
import { stackInfo } from '../support/stackInfo';
import { startWebhookReceiver } from '../support/webhookReceiver';
import { batchWorkflowRuns } from '../support/workflowHistory';
import { webhookEventSchema } from '../../schema/webhook';

afterAll(closeTemporal);

/** Each place of a memory a string can hide U+0000, with the field the refusal names. */
const NUL_PLACES: [string, MemoryItem, string][] = [
  ['content', { content: 'a\u0000b' }, 'content'],
  ['a metadata value', { content: 'ok', metadata: { k: 'a\u0000b' } }, 'metadata.k'],
  ['a metadata key', { content: 'ok', metadata: { nested: { 'a\u0000b': 1 } } }, 'metadata.nested'],
  ['a tag', { content: 'ok', tags: ['fine', 'a\u0000b'] }, 'tags[1]'],
  ['source', { content: 'ok', source: 'a\u0000b' }, 'source'],
];

/** Every memory id the results name exists, and belongs to the batch. */
async function namedMemoriesExist(answer: BatchMemoryResponse): Promise<void> {
  const ids = answer.results.flatMap((result) => (result.memory_id ? [result.memory_id] : []));
  const P = parse();
  const found = await new P.Query('Memory')
    .containedIn('objectId', ids)
    .equalTo('batch', P.Object.fromJSON({ className: 'BatchMemoryRequest', objectId: answer.batch_id }))
    .limit(ids.length)
    .find(master);
  expect(found.length).toBe(ids.length);
}

describe.each(NUL_PLACES)('U+0000 in %s', (_place, bad, field) => {
  const batch = () => [{ content: 'a good memory' }, bad];
  const message = `memories[1].${field} `;

  test('the Cloud Function refuses it naming the item and field; nothing is stored', async () => {
    const owner = await newUser('nul-cloud');
    await expect(addMemoryBatch(owner.sessionToken, { memories: batch() })).rejects.toMatchObject({ code: 142, message: expect.stringContaining(message) });
    expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
  });

  test('the REST route refuses it as JSON and as NDJSON: 400 naming the item and field; nothing is stored', async () => {
    const owner = await newUser('nul-rest');
    const json = await postJson('/memory/batch', { memories: batch() }, { token: owner.sessionToken });
    const ndjson = await rest('/memory/batch', {
      method: 'POST',
      token: owner.sessionToken,
      headers: { 'Content-Type': 'application/x-ndjson' },
      body: batch()
        .map((item) => `${JSON.stringify(item)}\n`)
        .join(''),
    });
    for (const answer of [json, ndjson]) {
      expect(answer.status).toBe(400);
      expect(answer.body.error.details[0]).toMatchObject({ index: 1, field: expect.stringMatching(new RegExp(`^${field.replace(/[[\].]/g, '\\$&')}`)), message: expect.stringContaining('U+0000') });
      expect(answer.body.error.message).toContain(message);
    }
    expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
  });

  test('the MCP door refuses it naming the item and field; nothing is stored', async () => {
    const owner = await newUser('nul-mcp');
    const client = new McpClient({ name: 'bad-items-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${SERVER}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${owner.sessionToken}` } } }));
    try {
      const answer = (await client.callTool({ name: 'import_memories', arguments: { memories: batch() } })) as { isError?: boolean; content: { text?: string }[] };
      expect(answer.isError).toBe(true);
      expect(answer.content.map((part) => part.text ?? '').join('')).toContain('U+0000');
    } finally {
      await client.close();
    }
    expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
  });
});

const PLANTED = 'PLANTED-REFUSAL';

/** A batch's answer once it has ended, as its owner's getMemoryBatch gives it. */
async function waitForEnd(batchId: string): Promise<BatchMemoryResponse> {
  return waitFor('the batch to end', async () => {
    const batch = (await parse().Cloud.run('getMemoryBatch', { batch_id: batchId }, master)) as BatchMemoryResponse;
    return ['completed', 'failed', 'cancelled'].includes(batch.status) ? batch : undefined;
  });
}

postgresOnlyTest('a memory a CHECK constraint of the host refuses fails alone with the database reason; every other memory is stored once, in seconds', async () => {
  const database = new PgClient({ connectionString: stackInfo().databaseURI });
  await database.connect();
  // NOT VALID: the rows other tests stored are not checked, only those written from now on.
  await database.query(`ALTER TABLE "Memory" ADD CONSTRAINT planted_refusal CHECK (content NOT LIKE '%${PLANTED}%') NOT VALID`);
  try {
    const owner = await newUser('refused');
    const refused = new Set([7, 201]);
    const items = memories(250, 120, (index) => (refused.has(index) ? { content: `secret words ${PLANTED} of memory ${index}` } : {}));
    const hook = await startWebhookReceiver();
    const answer = await addMemoryBatch(owner.sessionToken, { memories: items, webhook_url: hook.url, webhook_secret: 'bad-items-webhook-secret-0123456789' });
    expect({ status: answer.status, processed: answer.processed, failed: answer.failed, success: answer.success }).toEqual({ status: 'completed', processed: 248, failed: 2, success: false });
    const delivery = await waitFor('the webhook', async () => hook.deliveries[0], 60_000).finally(() => hook.close());
    expect(webhookEventSchema.parse(JSON.parse(delivery.body)).batch).toMatchObject({ batch_id: answer.batch_id, status: 'completed', success: false, processed: 248, failed: 2 });
    const failures = answer.results.filter((result) => !result.success);
    expect(failures.map((result) => ({ index: result.index, code: result.code }))).toEqual([...refused].map((index) => ({ index, code: 'store_refused' })));
    for (const failure of failures) {
      expect(failure.error).toMatch(/check constraint "planted_refusal".*SQLSTATE 23514/);
      expect(failure.error).not.toContain('secret words');
    }
    expect(await countMemories(answer.batch_id)).toBe(248);
    expect(await duplicateMemories(answer.batch_id)).toBe(0);
    await namedMemoriesExist(answer);

    // The host lifts the constraint; the refused items are retried, twice at once and once more after: one retry
    // batch, and each of its items written once.
    await database.query('ALTER TABLE "Memory" DROP CONSTRAINT planted_refusal');
    const retry = () => rest(`/memory/batch/${answer.batch_id}/retry`, { method: 'POST', token: owner.sessionToken });
    const retries = [...(await Promise.all([retry(), retry()])), await retry()];
    expect(new Set(retries.map((retried) => retried.body.batch_id)).size).toBe(1);
    const retried = await waitForEnd(retries[0].body.batch_id);
    expect({ processed: retried.processed, failed: retried.failed }).toEqual({ processed: 2, failed: 0 });
    expect(await countMemories(retries[0].body.batch_id)).toBe(2);
    expect(await duplicateMemories(retries[0].body.batch_id)).toBe(0);
  } finally {
    await database.query('ALTER TABLE "Memory" DROP CONSTRAINT IF EXISTS planted_refusal');
    await database.end();
  }
});

postgresOnlyTest("a memory a unique index of the host's refuses fails alone as store_refused; its twin is stored", async () => {
  const database = new PgClient({ connectionString: stackInfo().databaseURI });
  await database.connect();
  const twin = `planted-unique-${process.pid}`;
  await database.query(`CREATE UNIQUE INDEX planted_unique ON "Memory" (content) WHERE content LIKE 'planted-unique-%'`);
  try {
    const owner = await newUser('unique');
    const items = memories(60, 120, (index) => (index === 10 || index === 40 ? { content: twin } : {}));
    const answer = await addMemoryBatch(owner.sessionToken, { memories: items });
    expect({ status: answer.status, processed: answer.processed, failed: answer.failed }).toEqual({ status: 'completed', processed: 59, failed: 1 });
    // One of the twins is stored, whichever write reached the database first; the other is refused.
    const failures = answer.results.filter((result) => !result.success);
    expect(failures).toEqual([{ index: expect.any(Number), success: false, code: 'store_refused', error: expect.stringContaining('unique index') }]);
    expect([10, 40]).toContain(failures[0].index);
    expect(await countMemories(answer.batch_id)).toBe(59);
    await namedMemoriesExist(answer);
  } finally {
    await database.query('DROP INDEX IF EXISTS planted_unique');
    await database.end();
  }
});

mongoOnlyTest("a memory a unique index of the host's refuses fails alone as store_refused on MongoDB; its neighbours are stored once, webhook says completed with 1 failed", async () => {
  // A stack of its own: FerretDB has no partial indexes, so the planted index covers every memory of its database.
  const stack = await startPrivateStack('unique-index');
  const database = new MongoClient(stack.info.databaseURI);
  const hook = await startWebhookReceiver();
  try {
    await database.connect();
    await database.db().collection('Memory').createIndex({ content: 1 }, { unique: true, name: 'planted_unique' });
    const api = stackApi(stack.info);
    const owner = await api.signUp('unique');
    const twins = [10, 40];
    const items = memories(60, 120, (index) => (twins.includes(index) ? { content: 'planted twin' } : {}));
    const submitted = await api.call('/api/v1/memory/batch?wait=false', {
      token: owner.token,
      body: { memories: items, webhook_url: hook.url, webhook_secret: 'bad-items-webhook-secret-0123456789' },
    });
    expect(submitted.status).toBe(202);
    const batchId = submitted.body.batch_id as string;
    const ended = await waitFor('the batch to end', async () => {
      const status = await api.call(`/api/v1/memory/batch/${batchId}`, { token: owner.token });
      return ['completed', 'failed', 'cancelled'].includes(status.body.status) ? status.body : undefined;
    });
    expect({ status: ended.status, processed: ended.processed, failed: ended.failed }).toEqual({ status: 'completed', processed: 59, failed: 1 });
    const delivery = await waitFor('the webhook', async () => hook.deliveries[0], 60_000);
    expect(webhookEventSchema.parse(JSON.parse(delivery.body)).batch).toMatchObject({ batch_id: batchId, status: 'completed', processed: 59, failed: 1 });

    const results = ((await api.call(`/api/v1/memory/batch/${batchId}/results`, { token: owner.token })).body as string)
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as MemoryProcessingResult);
    // One of the twins is stored, whichever write reached the database first; the other is refused.
    const failures = results.filter((result) => !result.success);
    expect(failures).toEqual([{ index: expect.any(Number), success: false, code: 'store_refused', error: expect.stringContaining('unique index') }]);
    expect(twins).toContain(failures[0].index);
    expect(await api.memoryRows(batchId)).toEqual({ rows: 59, duplicates: 0 });
    // Every memory id a result names exists.
    const named = results.flatMap((result) => (result.memory_id ? [result.memory_id] : []));
    expect(await api.count('Memory', { objectId: { $in: named } })).toBe(named.length);
  } finally {
    await hook.close();
    await database.close();
    await stack.shutdown();
  }
});

test('a memory the processor throws for on every attempt fails alone after BATCH_ITEM_MAX_ATTEMPTS attempts of its part; the rest are stored', async () => {
  const maxAttempts = loadConfig(stackInfo().env).BATCH_ITEM_MAX_ATTEMPTS;
  const owner = await newUser('throws');
  // Two parts of the test stack (100 memories each): activities with attempts of their own in the history.
  const items = memories(150, 120, (index) => (index === 120 ? { metadata: { test_throw: true } } : {}));
  const hook = await startWebhookReceiver();
  const answer = await addMemoryBatch(owner.sessionToken, { memories: items, webhook_url: hook.url, webhook_secret: 'bad-items-webhook-secret-0123456789' });
  expect({ status: answer.status, processed: answer.processed, failed: answer.failed }).toEqual({ status: 'completed', processed: 149, failed: 1 });
  // The webhook says the same: completed, with the one failure.
  const delivery = await waitFor('the webhook', async () => hook.deliveries[0], 60_000).finally(() => hook.close());
  expect(webhookEventSchema.parse(JSON.parse(delivery.body)).batch).toMatchObject({ batch_id: answer.batch_id, status: 'completed', success: false, processed: 149, failed: 1 });
  expect(answer.results.filter((result) => !result.success)).toEqual([{ index: 120, success: false, code: 'processing_failed', error: `processing failed on each of ${maxAttempts} attempts` }]);
  expect(await countMemories(answer.batch_id)).toBe(149);
  expect(await duplicateMemories(answer.batch_id)).toBe(0);
  await namedMemoriesExist(answer);

  const runs = await batchWorkflowRuns(await temporal(), answer.batch_id);
  // The batch's only activity tasks are its two parts (its start and end run as local activities).
  const partAttempts = runs.flatMap((run) => run.events).flatMap((event) => (event.activityTaskStartedEventAttributes ? [event.activityTaskStartedEventAttributes.attempt ?? 0] : []));
  expect(partAttempts.sort()).toEqual([1, maxAttempts]);

  // The operator hears of it once, at warn, with the batch id; the attempts before the last are not each a warning.
  const warnings = fs
    .readFileSync(path.join(stackInfo().logDir, 'worker.log'), 'utf8')
    .split('\n')
    .filter((line) => line.includes(answer.batch_id))
    .map((line) => JSON.parse(line) as { level: string; msg: string; batchId?: string })
    .filter((line) => line.level === 'warn' || line.level === 'error');
  expect(warnings.map(({ level, msg, batchId }) => ({ level, msg, batchId }))).toEqual([{ level: 'warn', msg: 'memories failed on every attempt; recorded failed', batchId: answer.batch_id }]);
});
