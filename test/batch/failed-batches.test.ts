/**
 * On one private stack with small limits (BATCH_WORKFLOW_TIMEOUT 10 s, parts of 4 KiB, writes of 1 KiB):
 * batches that end `failed` — by the workflow timeout, or by a stored part that is missing or corrupt —
 * answer 207 with the reason, deliver a signed `batch.failed` webhook, make the CLI exit 1 and count
 * exactly the memories written; and a batch is split into parts and writes by the byte limits.
 */
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../config';
import { defaultFilesAdapter } from '../../cloud/filesAdapter';
import { WEBHOOK_HEADERS, verifyWebhookSignature, webhookEventSchema } from '../../schema/webhook';
import { workflowIdFor } from '../../schema/workflow';
import type { MemoryItem } from '../../schema/memory';
import { startCli, summaryValue } from '../client/cliProcess';
import { fileStorage } from '../support/fileStorage';
import { type Gate, englishText, newGate, waitFor } from '../support/helpers';
import { type PrivateStack, startPrivateStack } from '../support/privateStack';
import { startWebhookReceiver } from '../support/webhookReceiver';
import { batchWorkflowRuns } from '../support/workflowHistory';
import { stackApi } from '../reliability/stackApi';

const WORKFLOW_TIMEOUT_MS = 10_000;
const PART_MAX_BYTES = 4096;
const WRITE_MAX_BYTES = 1024;
const FILES_ENCRYPTION_KEY = 'failed-batches-files-key-0123456789';
const SECRET = 'webhook-secret-of-failed-batches';

let stack: PrivateStack;
let api: ReturnType<typeof stackApi>;
let origin: string;
let temporal: Client;

beforeAll(async () => {
  stack = await startPrivateStack('failed-batches', {
    BATCH_WORKFLOW_TIMEOUT: `${WORKFLOW_TIMEOUT_MS}ms`,
    BATCH_PART_MAX_BYTES: String(PART_MAX_BYTES),
    BATCH_WRITE_MAX_BYTES: String(WRITE_MAX_BYTES),
    FILES_ENCRYPTION_KEY,
  });
  api = stackApi(stack.info);
  origin = stack.info.serverURL.replace(/\/parse$/, '');
  temporal = new Client({ connection: await Connection.connect({ address: stack.info.temporalAddress }), namespace: stack.info.namespace });
}, 240_000);

afterAll(async () => {
  await temporal?.connection.close();
  await stack?.shutdown();
});

/** A memory whose JSON (`{"content":"…"}`, as the part file and the write limit count it) is exactly `bytes` bytes. */
function sized(bytes: number, seed: number, metadata?: Record<string, unknown>): MemoryItem {
  const item: MemoryItem = { content: '', ...(metadata ? { metadata } : {}) };
  const overhead = Buffer.byteLength(JSON.stringify(item));
  item.content = englishText(bytes, seed).slice(0, bytes - overhead);
  expect(Buffer.byteLength(JSON.stringify(item))).toBe(bytes);
  return item;
}

const pointer = (className: string, objectId: string) => ({ __type: 'Pointer', className, objectId });
const where = (query: object) => encodeURIComponent(JSON.stringify(query));

async function partRows(partsKey: string): Promise<{ objectId: string; index: number; name: string; first: number; count: number; rawBytes: number }[]> {
  const answer = await api.call(`/parse/classes/BatchMemoryPart?where=${where({ partsKey })}&order=index&limit=1000`, { master: true });
  return answer.body.results;
}

/** The private stack's own files adapter (on disk, or GridFS on MongoDB), to store bytes exactly as Parse Server would (encrypted with its key). */
function filesAdapter(): { createFile(name: string, data: Buffer): Promise<unknown> } {
  return defaultFilesAdapter(loadConfig(stack.info.env)) as { createFile(name: string, data: Buffer): Promise<unknown> };
}

interface FailureCase {
  memories: MemoryItem[];
  /** Holds the first parts until the stored batch is altered (or, never opened, until the workflow times out). */
  gate: Gate;
  /** Alters the stored batch after it is stored and before the workflow reaches the altered part. */
  tamper?: (parts: Awaited<ReturnType<typeof partRows>>) => Promise<void>;
  reason: RegExp;
}

/**
 * Submits a batch (the REST call waits for its end), follows it with `memory-batch wait`, and checks
 * every outlet of the failure: the 207 answer, the status, the signed webhook, the CLI's exit code,
 * and counts equal to the Memory rows written. Answers the batch's processed count.
 */
async function expectBatchFails({ memories, gate, tamper, reason }: FailureCase): Promise<number> {
  const user = await api.signUp('failed');
  const hook = await startWebhookReceiver();
  let cli: ReturnType<typeof startCli> | undefined;
  try {
    const submitted = api.call('/api/v1/memory/batch', { body: { memories, webhook_url: hook.url, webhook_secret: SECRET }, token: user.token });
    // Awaited below; a check that fails first must not leave it unhandled.
    submitted.catch(() => undefined);
    const batch = await waitFor(
      'the batch to be stored',
      async () => (await api.call(`/parse/classes/BatchMemoryRequest?where=${where({ user: pointer('_User', user.id) })}`, { master: true })).body.results?.[0],
      60_000,
      50,
    );
    const batchId = batch.objectId as string;
    if (tamper) {
      await tamper(await partRows(batch.partsKey));
      gate.open();
    }
    cli = startCli(['wait', batchId, '--server', origin], { MEMORY_BATCH_SESSION_TOKEN: user.token, PARSE_APP_ID: stack.info.appId });

    const answer = await submitted;
    expect(answer.status).toBe(207);
    expect(answer.body).toMatchObject({ success: false, batch_id: batchId, status: 'failed', total: memories.length });
    expect(answer.body.errors[0]).toMatch(reason);

    const status = await api.call(`/api/v1/memory/batch/${batchId}`, { token: user.token });
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ status: 'failed', processed: answer.body.processed, failed: answer.body.failed });
    expect(status.body.error).toMatch(reason);

    // Every part activity had closed when the workflow ended: no write can follow the counts.
    await temporal.workflow.getHandle(workflowIdFor(batchId)).result();
    for (const { events } of await batchWorkflowRuns(temporal, batchId)) {
      const scheduled = events.filter((event) => event.activityTaskScheduledEventAttributes).map((event) => Number(event.eventId));
      const closed = events
        .map((event) => event.activityTaskCompletedEventAttributes ?? event.activityTaskFailedEventAttributes ?? event.activityTaskCanceledEventAttributes ?? event.activityTaskTimedOutEventAttributes)
        .filter((attributes) => attributes)
        .map((attributes) => Number(attributes?.scheduledEventId));
      expect(scheduled.length).toBeGreaterThan(0);
      expect(closed.sort((a, b) => a - b)).toEqual(scheduled);
    }
    const { rows, duplicates } = await api.memoryRows(batchId);
    expect(duplicates).toBe(0);
    expect(answer.body.processed).toBe(rows);
    expect(answer.body.failed).toBe(0);
    expect(rows).toBeLessThan(memories.length);

    await waitFor('the batch.failed webhook', async () => hook.deliveries.length > 0, 60_000);
    const [delivery] = hook.deliveries;
    expect(
      verifyWebhookSignature({
        secret: SECRET,
        body: delivery.body,
        timestamp: delivery.headers[WEBHOOK_HEADERS.timestamp] as string,
        signature: delivery.headers[WEBHOOK_HEADERS.signature] as string,
      }),
    ).toBe(true);
    expect(delivery.headers[WEBHOOK_HEADERS.event]).toBe('batch.failed');
    const event = webhookEventSchema.parse(JSON.parse(delivery.body));
    expect(event).toMatchObject({ id: `${batchId}:failed`, type: 'batch.failed', batch: { batch_id: batchId, status: 'failed', success: false, total: memories.length, processed: rows, failed: 0 } });
    expect(event.batch.error).toMatch(reason);

    const exit = await cli.exit;
    expect(exit.code).toBe(1);
    expect(summaryValue(exit.stdout, 'status')).toBe('failed');
    expect(summaryValue(exit.stdout, 'successful')).toBe(String(rows));
    expect(summaryValue(exit.stdout, 'error')).toMatch(reason);
    return rows;
  } finally {
    gate.open();
    if (cli?.child.exitCode === null) cli.child.kill();
    await hook.close();
  }
}

/** Six parts of 50 memories of 80 bytes (one chunk to a write); the memories from `heldFrom` on wait for the gate. */
function heldBatch(gate: Gate, heldFrom: number): MemoryItem[] {
  return Array.from({ length: 300 }, (_, index) => sized(80, index, index >= heldFrom ? gate.hold : {}));
}

/**
 * The four parts that start at once wait for the gate, which opens once the last part is altered:
 * a lane reaches that part only after the parts before it are written.
 */
function tampered(tamper: NonNullable<FailureCase['tamper']>, reason: RegExp): FailureCase {
  const gate = newGate(stack.info.env.DATA_DIR);
  return { memories: heldBatch(gate, 0), gate, tamper, reason };
}

test('a batch that runs out of BATCH_WORKFLOW_TIMEOUT ends failed, with what it wrote counted', async () => {
  // The first part is written; the others wait for a gate that stays closed until the timeout cancels them.
  const gate = newGate(stack.info.env.DATA_DIR);
  const processed = await expectBatchFails({ memories: heldBatch(gate, 50), gate, reason: new RegExp(`^batch did not finish within BATCH_WORKFLOW_TIMEOUT \\(${WORKFLOW_TIMEOUT_MS} ms\\)$`) });
  expect(processed).toBeGreaterThanOrEqual(50);
});

test('a part file deleted from storage fails the batch, naming the part', async () => {
  await expectBatchFails(
    tampered(async (parts) => {
      expect(parts).toHaveLength(6);
      await fileStorage(stack.info.env).remove(parts[5].name);
    }, /^part 5 of batch \w+ is missing from file storage or does not decrypt with FILES_ENCRYPTION_KEY$/),
  );
});

test('a part file overwritten in storage (it no longer decrypts) fails the batch, naming the part', async () => {
  await expectBatchFails(
    tampered(async (parts) => {
      const storage = fileStorage(stack.info.env);
      const bytes = await storage.read(parts[5].name);
      bytes[Math.floor(bytes.length / 2)] ^= 0xff;
      await storage.write(parts[5].name, bytes);
    }, /^part 5 of batch \w+ is missing from file storage or does not decrypt with FILES_ENCRYPTION_KEY$/),
  );
});

test('a part file that reads back but is not gzip JSON Lines fails the batch at once instead of being retried', async () => {
  await expectBatchFails(
    tampered(async (parts) => {
      await filesAdapter().createFile(parts[5].name, Buffer.from('not gzip: a part damaged in storage that has no encryption of its own'));
    }, /^part 5 of batch \w+ is corrupt: /),
  );
});

test('a missing BatchMemoryPart row fails the batch, naming the part', async () => {
  await expectBatchFails(
    tampered(async (parts) => {
      expect((await api.call(`/parse/classes/BatchMemoryPart/${parts[5].objectId}`, { method: 'DELETE', master: true })).status).toBe(200);
    }, /^batch \w+ has no part 5$/),
  );
});

test('parts and writes are split by BATCH_PART_MAX_BYTES and BATCH_WRITE_MAX_BYTES, and the batch completes exactly', async () => {
  // Memories of 50 bytes (51 with the newline of the part file) and, at index 170, one of 1500.
  const sizes = Array.from({ length: 190 }, (_, index) => (index === 170 ? 1500 : 50));
  const items = sizes.map((bytes, index) => sized(bytes, index));
  const user = await api.signUp('limits');
  const answer = await api.call('/api/v1/memory/batch', { body: { memories: items }, token: user.token });
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ success: true, status: 'completed', total: 190, processed: 190, failed: 0 });
  const batchId = answer.body.batch_id as string;
  const batch = await api.batch(batchId);

  // Parts: 80 × 51 = 4080 bytes fit 4096; the 81st line would not. The last part (30 memories) holds the large one.
  const parts = await partRows(batch.partsKey);
  expect(parts.map(({ first, count, rawBytes }) => ({ first, count, rawBytes }))).toEqual([
    { first: 0, count: 80, rawBytes: 80 * 51 },
    { first: 80, count: 80, rawBytes: 80 * 51 },
    { first: 160, count: 30, rawBytes: 29 * 51 + 1501 },
  ]);
  expect(batch.partCount).toBe(3);

  // Writes: chunks of 10 memories are 500 bytes, so two go in one write of at most 1024 bytes (BATCH_WRITE_MAX_ITEMS
  // would allow three); the chunk at 170 (1950 bytes) is over the limit and goes alone, between two writes of one chunk.
  // One write's chunk rows are recorded in one request and share its createdAt.
  const chunks: { part: number; first: number; attempt: number; createdAt: string }[] = (
    await api.call(`/parse/classes/BatchMemoryChunk?where=${where({ batch: pointer('BatchMemoryRequest', batchId) })}&keys=part,first,attempt,createdAt&limit=1000`, { master: true })
  ).body.results;
  expect(chunks.every(({ attempt }) => attempt === 1)).toBe(true);
  const writes = new Map<string, number[]>();
  for (const { part, first, createdAt } of chunks)
    writes.set(
      `${part} ${createdAt}`,
      [...(writes.get(`${part} ${createdAt}`) ?? []), first].sort((a, b) => a - b),
    );
  expect([...writes.values()].sort((a, b) => a[0] - b[0])).toEqual([[0, 10], [20, 30], [40, 50], [60, 70], [80, 90], [100, 110], [120, 130], [140, 150], [160], [170], [180]]);

  const { rows, duplicates } = await api.memoryRows(batchId);
  expect(rows).toBe(190);
  expect(duplicates).toBe(0);
});
