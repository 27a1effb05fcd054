/**
 * Item ids: a memory may carry the client's own `custom_id` (at most 255 characters, unique within a batch). It is
 * stored on the Memory, echoed in every per-item result and failure (the inline results, the results download, the
 * MCP failures), and kept through retries, whose results also give each memory's index in the batch it was first
 * sent in. A repeated custom_id is refused on every door, naming both indexes, with nothing stored.
 */
import { MAX_CUSTOM_ID_LENGTH, type BatchMemoryResponse, type MemoryItem, type MemoryProcessingResult } from '../../schema/memory';
import { addMemoryBatch, closeTemporal, master, newUser, parse, storedBy, waitFor } from '../support/helpers';
import { openApiProblems, postJson, rest } from '../support/rest';
import { McpClients } from '../support/mcpClient';

const mcp = new McpClients();
afterAll(async () => {
  await closeTemporal();
  await mcp.close();
});

/** Six memories, custom ids `note-0` … `note-5`; items 1 and 4 are refused by the test processor on every attempt. */
const REFUSED = [1, 4];
const batchOf = (): MemoryItem[] =>
  Array.from({ length: 6 }, (_, index) => ({ content: `memory ${index}`, custom_id: `note-${index}`, ...(REFUSED.includes(index) ? { metadata: { test_reject: 'refused' } } : {}) }));

async function ended(batchId: string): Promise<BatchMemoryResponse> {
  return waitFor('the batch to end', async () => {
    const batch = (await parse().Cloud.run('getMemoryBatch', { batch_id: batchId }, master)) as BatchMemoryResponse;
    return ['completed', 'failed', 'cancelled'].includes(batch.status) ? batch : undefined;
  });
}

/** What names each result: index, custom_id, original index, and whether it was stored. */
const named = (results: MemoryProcessingResult[]) => results.map(({ index, custom_id, original_index, success }) => ({ index, custom_id, original_index, success }));

test('custom_id is stored on each Memory and echoed in the inline results, the download and the MCP failures', async () => {
  const owner = await newUser('custom-id');
  const answer = await addMemoryBatch(owner.sessionToken, { memories: batchOf() });
  expect(named(answer.results)).toEqual(batchOf().map((item, index) => ({ index, custom_id: item.custom_id, original_index: undefined, success: !REFUSED.includes(index) })));
  for (const result of answer.results) expect(await openApiProblems('MemoryProcessingResult', result)).toEqual([]);

  const rows = await new (parse().Query)('Memory').equalTo('user', owner.user).ascending('batchIndex').find(master);
  expect(rows.map((row) => [row.get('batchIndex'), row.get('customId'), row.id])).toEqual(
    answer.results.filter((result) => result.success).map((result) => [result.index, result.custom_id, result.memory_id]),
  );

  const download = await rest(`/memory/batch/${answer.batch_id}/results`, { token: owner.sessionToken });
  expect(download.status).toBe(200);
  expect(
    download.text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as MemoryProcessingResult),
  ).toEqual(answer.results);

  const client = await mcp.connect('http', owner.sessionToken);
  try {
    const failures = (await client.callTool({ name: 'get_batch_failures', arguments: { batch_id: answer.batch_id } })) as unknown as {
      isError?: boolean;
      structuredContent: { failures: MemoryProcessingResult[] };
    };
    expect(failures.isError).toBeFalsy();
    expect(failures.structuredContent.failures.map(({ index, custom_id, code }) => ({ index, custom_id, code }))).toEqual(
      REFUSED.map((index) => ({ index, custom_id: `note-${index}`, code: 'rejected' })),
    );
  } finally {
    await client.close();
  }
});

test("a retry's results carry each memory's custom_id and its index in the first batch, through a retry of the retry", async () => {
  const owner = await newUser('custom-id-retry');
  const first = await addMemoryBatch(owner.sessionToken, { memories: batchOf() });
  expect(first.failed).toBe(REFUSED.length);
  const expected = REFUSED.map((originalIndex, index) => ({ index, custom_id: `note-${originalIndex}`, original_index: originalIndex, success: false }));

  const retried = await rest(`/memory/batch/${first.batch_id}/retry`, { method: 'POST', token: owner.sessionToken });
  expect(retried.status).toBe(202);
  const retry = await ended(retried.body.batch_id);
  expect(named(retry.results)).toEqual(expected);

  // The retry's own failures, retried: still named by the first batch's indexes.
  const again = await rest(`/memory/batch/${retry.batch_id}/retry`, { method: 'POST', token: owner.sessionToken });
  expect(again.status).toBe(202);
  expect(named((await ended(again.body.batch_id)).results)).toEqual(expected);
});

describe('a repeated custom_id', () => {
  // memories[3] repeats memories[1]'s id: the refusal names index 3 and field custom_id, and index 1 in its message.
  const repeated = (): MemoryItem[] => [{ content: 'a', custom_id: 'private-id-a' }, { content: 'b', custom_id: 'private-id-b' }, { content: 'c' }, { content: 'd', custom_id: 'private-id-b' }];
  const refusal = { index: 3, field: 'custom_id', message: expect.stringContaining('repeats the custom_id of memories[1]') };

  test('is refused by the Cloud Function naming both indexes, without echoing the id; nothing is stored', async () => {
    const owner = await newUser('custom-id-repeat-cloud');
    const error = (await addMemoryBatch(owner.sessionToken, { memories: repeated() }).catch((caught: unknown) => caught)) as { code: number; message: string };
    expect(error).toMatchObject({ code: 142, message: expect.stringContaining('memories[3].custom_id repeats the custom_id of memories[1]') });
    expect(error.message).not.toContain('private-id');
    expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
  });

  test('is refused by the REST route as JSON and as NDJSON (400, details naming both indexes); nothing is stored', async () => {
    const owner = await newUser('custom-id-repeat-rest');
    const json = await postJson('/memory/batch', { memories: repeated() }, { token: owner.sessionToken });
    const ndjson = await rest('/memory/batch', {
      method: 'POST',
      token: owner.sessionToken,
      headers: { 'Content-Type': 'application/x-ndjson' },
      body: repeated()
        .map((item) => `${JSON.stringify(item)}\n`)
        .join(''),
    });
    for (const answer of [json, ndjson]) {
      expect(answer.status).toBe(400);
      expect(answer.body.error.details).toEqual([expect.objectContaining(refusal)]);
      expect(answer.text).not.toContain('private-id');
    }
    expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
  });

  test('is refused by the MCP door; nothing is stored', async () => {
    const owner = await newUser('custom-id-repeat-mcp');
    const client = await mcp.connect('http', owner.sessionToken);
    try {
      const answer = (await client.callTool({ name: 'import_memories', arguments: { memories: repeated() } })) as { isError?: boolean; content: { text?: string }[] };
      expect(answer.isError).toBe(true);
      const text = answer.content.map((part) => part.text ?? '').join('');
      expect(text).toContain('memories[3].custom_id repeats the custom_id of memories[1]');
      expect(text).not.toContain('private-id');
    } finally {
      await client.close();
    }
    expect(await storedBy(owner)).toEqual({ batches: 0, memories: 0 });
  });
});

test(`a custom_id over ${MAX_CUSTOM_ID_LENGTH} characters, or empty, is refused naming the index, field and limit`, async () => {
  const owner = await newUser('custom-id-long');
  const answer = await postJson(
    '/memory/batch',
    {
      memories: [
        { content: 'a', custom_id: 'x'.repeat(MAX_CUSTOM_ID_LENGTH + 1) },
        { content: 'b', custom_id: '' },
      ],
    },
    { token: owner.sessionToken },
  );
  expect(answer.status).toBe(400);
  expect(answer.body.error.details).toEqual([
    expect.objectContaining({ index: 0, field: 'custom_id', limit: MAX_CUSTOM_ID_LENGTH }),
    expect.objectContaining({ index: 1, field: 'custom_id', message: 'must not be empty' }),
  ]);
  // Exactly at the limit is taken.
  const atLimit = await postJson('/memory/batch', { memories: [{ content: 'a', custom_id: 'x'.repeat(MAX_CUSTOM_ID_LENGTH) }] }, { token: owner.sessionToken });
  expect(atLimit.status).toBe(200);
  expect(atLimit.body.results).toEqual([expect.objectContaining({ index: 0, custom_id: 'x'.repeat(MAX_CUSTOM_ID_LENGTH), success: true })]);
});
