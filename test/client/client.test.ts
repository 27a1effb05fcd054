/** BatchMemoryClient against the real stack: submit (JSON and NDJSON), get, wait, cancel, delete, results, and typed errors. */
import http from 'node:http';
import { Readable } from 'node:stream';
import { BatchApiError, BatchMemoryClient, BatchWaitTimeoutError } from '../../client';
import { freePort } from '../../scripts/processes';
import type { BatchStatusResponse, MemoryProcessingResult } from '../../schema/memory';
import { closeTemporal, countMemories, duplicateMemories, getBatch, heldMemories, memories, newGate, newUser, untilActivitiesClosed, waitFor } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';
import { SERVER } from './cliProcess';

afterAll(closeTemporal);

function clientFor(sessionToken: string, options: { bearer?: boolean } = {}): BatchMemoryClient {
  return new BatchMemoryClient({ serverUrl: SERVER, appId: stackInfo().appId, auth: { sessionToken, ...options } });
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

test('add (JSON): waits for the batch, answers 200 with every result; the same idempotency key replays the same batch', async () => {
  const { sessionToken } = await newUser('client-json');
  const client = clientFor(sessionToken);
  const request = { memories: memories(50), namespace: 'client-json' };
  const first = await client.add(request, { idempotencyKey: 'client-json-1' });
  expect(first).toMatchObject({ httpStatus: 200, replayed: false, batch: { success: true, status: 'completed', total: 50, processed: 50, failed: 0 } });
  expect(first.batch.results.map((r) => r.index)).toEqual([...Array(50).keys()]);
  const replay = await client.add(request, { idempotencyKey: 'client-json-1' });
  expect(replay).toMatchObject({ httpStatus: 200, replayed: true, batch: { batch_id: first.batch.batch_id } });
  expect(await countMemories(first.batch.batch_id)).toBe(50);
});

test('addNdjson streams lines with gzip; wait follows the events stream to the end; results iterate every item in order', async () => {
  const { sessionToken } = await newUser('client-ndjson');
  const client = clientFor(sessionToken, { bearer: true });
  const lines = Readable.from(memories(1200).map((memory) => `${JSON.stringify(memory)}\n`));
  const accepted = await client.addNdjson(lines, { namespace: 'client-ndjson' }, { wait: false });
  expect(accepted).toMatchObject({ httpStatus: 202, replayed: false, batch: { total: 1200, results: [] } });

  const seen: BatchStatusResponse[] = [];
  const final = await client.wait(accepted.batch.batch_id, { onProgress: (status) => seen.push(status) });
  expect(final).toMatchObject({ batch_id: accepted.batch.batch_id, status: 'completed', total: 1200, processed: 1200, failed: 0 });
  expect(seen[seen.length - 1]).toEqual(final);
  const processed = seen.map((status) => status.processed);
  expect(processed).toEqual([...processed].sort((a, b) => a - b));

  const results: MemoryProcessingResult[] = await collect(client.results(accepted.batch.batch_id));
  expect(results.map((r) => r.index)).toEqual([...Array(1200).keys()]);
  expect(results.every((r) => r.success && typeof r.memory_id === 'string')).toBe(true);
  expect(await countMemories(accepted.batch.batch_id)).toBe(1200);
  expect(await duplicateMemories(accepted.batch.batch_id)).toBe(0);
  expect(await client.get(accepted.batch.batch_id)).toEqual({ ...final, results_url: `/api/v1/memory/batch/${accepted.batch.batch_id}/results` });
});

test('wait by polling; a wait that runs out rejects with BatchWaitTimeoutError while the batch keeps running; cancel stops it; delete undoes it', async () => {
  const { sessionToken } = await newUser('client-cancel');
  const client = clientFor(sessionToken);
  const accepted = await client.add({ memories: heldMemories(400, newGate()) }, { wait: false });
  expect(accepted.httpStatus).toBe(202);
  const batchId = accepted.batch.batch_id;

  const timedOut = await rejection(client.wait(batchId, { via: 'poll', timeoutMs: 1 }));
  expect(timedOut).toBeInstanceOf(BatchWaitTimeoutError);
  expect(timedOut).toMatchObject({ batchId, timeoutMs: 1 });

  await waitFor('the first memories to be written', async () => (await countMemories(batchId)) > 0, 120_000);
  const cancelled = await client.cancel(batchId);
  expect(cancelled).toMatchObject({ batch_id: batchId, status: 'cancelled', success: false });
  const rowsAtCancel = await countMemories(batchId);
  expect(rowsAtCancel).toBeLessThan(400);
  expect(cancelled.processed).toBe(rowsAtCancel);
  const polled = await client.wait(batchId, { via: 'poll', pollIntervalMs: 200, timeoutMs: 60_000 });
  expect(polled.status).toBe('cancelled');
  // Counted again once Temporal's history shows every activity closed (some stopped mid-part by the cancel).
  const activities = await untilActivitiesClosed(batchId);
  expect(activities.cancelled).toBeGreaterThan(0);
  expect(await countMemories(batchId)).toBe(rowsAtCancel);
  expect(polled.processed).toBe(rowsAtCancel);

  // Undone: the memories the cancelled batch wrote go, and wait follows the deletion to its end.
  const deletion = await client.delete(batchId);
  expect(deletion).toMatchObject({ batch_id: batchId, status: 'deleting', deleted_memories: rowsAtCancel });
  expect(await client.wait(batchId, { timeoutMs: 60_000 })).toMatchObject({ status: 'deleted', deleted_memories: rowsAtCancel });
  expect(await countMemories(batchId)).toBe(0);
});

test('the master key submits for the user named by userId', async () => {
  const owner = await newUser('client-master');
  const client = new BatchMemoryClient({ serverUrl: stackInfo().serverURL, auth: { masterKey: stackInfo().masterKey, userId: owner.id } });
  const answer = await client.addNdjson(['{"content":"from the master key"}\n'], {}, { wait: true });
  expect(answer.batch).toMatchObject({ status: 'completed', processed: 1 });
  expect((await getBatch(answer.batch.batch_id)).get('user').id).toBe(owner.id);
  expect(await countMemories(answer.batch.batch_id)).toBe(1);
});

describe('errors become BatchApiError with the HTTP status, code, message and details', () => {
  test('401 for a session that does not exist', async () => {
    const error = await rejection(clientFor('r:not-a-session').get('abc123'));
    expect(error).toBeInstanceOf(BatchApiError);
    expect(error).toMatchObject({ status: 401, code: 'unauthorized', message: 'the session token is invalid or expired', details: [] });
  });

  test('400 with details naming each item, field and limit, for JSON and NDJSON', async () => {
    const { sessionToken } = await newUser('client-400');
    const client = clientFor(sessionToken);
    const invalid = await rejection(client.add({ memories: [{ content: 'ok' }, { content: 'x', tags: 'not-a-list' as unknown as string[] }, { content: '' }] }));
    expect(invalid).toMatchObject({
      status: 400,
      code: 'invalid_request',
      details: [
        { path: 'memories[1].tags', index: 1, field: 'tags', message: 'must be an array of strings' },
        { path: 'memories[2].content', index: 2, field: 'content', message: 'must not be empty' },
      ],
    });
    const tooBig = await rejection(client.addNdjson([`${JSON.stringify({ content: 'ok' })}\n`, `${JSON.stringify({ content: 'b'.repeat(10 * 1024 * 1024 + 1) })}\n`]));
    expect(tooBig).toMatchObject({ status: 413, code: 'too_large', details: [{ index: 1, limit: 10 * 1024 * 1024 }] });
  });

  test('404 for a batch that does not exist or belongs to someone else; 409 for results of an unfinished batch', async () => {
    const owner = await newUser('client-owner');
    const other = await newUser('client-other');
    const accepted = await clientFor(owner.sessionToken).add({ memories: memories(2000, 100) }, { wait: false });
    const notYet = await rejection(collect(clientFor(owner.sessionToken).results(accepted.batch.batch_id)));
    expect(notYet).toMatchObject({ status: 409, code: 'conflict', message: expect.stringContaining('has not finished') });
    for (const attempt of [
      () => clientFor(other.sessionToken).get(accepted.batch.batch_id),
      () => clientFor(other.sessionToken).cancel(accepted.batch.batch_id),
      () => clientFor(other.sessionToken).delete(accepted.batch.batch_id),
      () => collect(clientFor(other.sessionToken).events(accepted.batch.batch_id)),
      () => clientFor(owner.sessionToken).get('nonexistent1'),
    ]) {
      expect(await rejection(attempt())).toMatchObject({ status: 404, code: 'not_found', message: expect.stringMatching(/^batch \w+ not found$/) });
    }
  });

  test('no server: status 0, unreachable; an answer that breaks the schema: invalid_response', async () => {
    const port = await freePort();
    const unreachable = await rejection(new BatchMemoryClient({ serverUrl: `http://127.0.0.1:${port}`, auth: { sessionToken: 'r:x' } }).get('abc'));
    expect(unreachable).toMatchObject({ status: 0, code: 'unreachable', message: expect.stringContaining(`cannot reach http://127.0.0.1:${port}/api/v1/memory/batch/abc`) });

    const impostor = http.createServer((_req, res) => res.setHeader('Content-Type', 'application/json').end(JSON.stringify({ batch_id: 7, status: 'done' })));
    await new Promise<void>((resolve) => impostor.listen(port, '127.0.0.1', resolve));
    try {
      const invalid = await rejection(new BatchMemoryClient({ serverUrl: `http://127.0.0.1:${port}`, auth: { sessionToken: 'r:x' } }).get('abc'));
      expect(invalid).toMatchObject({
        status: 200,
        code: 'invalid_response',
        details: expect.arrayContaining([expect.objectContaining({ path: 'batch_id' }), expect.objectContaining({ path: 'status' })]),
      });
    } finally {
      await new Promise((resolve) => impostor.close(resolve));
    }
  });
});
