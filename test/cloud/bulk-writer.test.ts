/**
 * The worker's bulk write route on the database the run uses (PostgreSQL's multi-row INSERT, MongoDB's
 * unordered insertMany): objects already written by an earlier attempt of the same write answer as
 * duplicates while the new ones in the same request go in, each stored as Parse Server stores it
 * (readable through Parse by its owner only, pointers and numbers intact); chunk rows likewise.
 */
import { loadConfig, parseEndpoint } from '../../config';
import { bulkWriteURL, masterRequest } from '../../storage/http';
import { addMemoryBatch, countMemories, duplicateMemories, master, memories, newUser, parse } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';

const endpoint = parseEndpoint(loadConfig(stackInfo().env));
const pointer = (className: string, objectId: string) => ({ __type: 'Pointer', className, objectId });

async function bulkCreate(className: string, objects: Record<string, unknown>[]): Promise<{ success?: { objectId: string }; error?: { code: number } }[]> {
  const response = await masterRequest(endpoint, bulkWriteURL(endpoint, className), { method: 'POST', body: JSON.stringify({ objects }), contentType: 'application/json' });
  expect(response.status).toBe(200);
  return JSON.parse(response.body.toString()) as { success?: { objectId: string }; error?: { code: number } }[];
}

test('a repeated write answers the memories already written as duplicates and stores the new ones of the same request', async () => {
  const owner = await newUser('bulk');
  const other = await newUser('bulk-other');
  const done = await addMemoryBatch(owner.sessionToken, { memories: memories(3) });
  const batch = await new (parse().Query)('BatchMemoryRequest').get(done.batch_id, master);
  const body = (index: number) => ({
    content: `memory ${index}`,
    metadata: { index },
    tags: ['a', 'b'],
    user: pointer('_User', owner.id),
    organization: pointer('Organization', (batch.get('organization') as Parse.Object).id as string),
    batch: pointer('BatchMemoryRequest', done.batch_id),
    batchIndex: index,
    batchItem: `${done.batch_id}:${index}`,
    ACL: { [owner.id]: { read: true } },
  });
  // Indexes 0–2 were written by the batch; 3 and 4 are new, and 4 comes twice in the same request.
  const answers = await bulkCreate('Memory', [0, 1, 2, 3, 4, 4].map(body));
  expect(answers.map((answer) => (answer.success ? 'written' : answer.error?.code))).toEqual([137, 137, 137, 'written', 'written', 137]);
  expect(await countMemories(done.batch_id)).toBe(5);
  expect(await duplicateMemories(done.batch_id)).toBe(0);

  const P = parse();
  const stored = await new P.Query('Memory').get(answers[3].success?.objectId as string, { sessionToken: owner.sessionToken });
  expect(stored.get('content')).toBe('memory 3');
  expect(stored.get('metadata')).toEqual({ index: 3 });
  expect(stored.get('tags')).toEqual(['a', 'b']);
  expect(stored.get('batchIndex')).toBe(3);
  expect((stored.get('batch') as Parse.Object).id).toBe(done.batch_id);
  expect(stored.createdAt).toBeInstanceOf(Date);
  await expect(new P.Query('Memory').get(stored.id as string, { sessionToken: other.sessionToken })).rejects.toMatchObject({ code: P.Error.OBJECT_NOT_FOUND });
  expect(await new P.Query('Memory').equalTo('batch', batch).count({ sessionToken: owner.sessionToken })).toBe(5);
});

test('a chunk row recorded twice answers the second as a duplicate; one row stays', async () => {
  const owner = await newUser('bulk-chunk');
  const done = await addMemoryBatch(owner.sessionToken, { memories: memories(2) });
  const row = (first: number) => ({
    batch: pointer('BatchMemoryRequest', done.batch_id),
    key: `${done.batch_id}:${first}`,
    part: 0,
    first,
    count: 1,
    processed: 1,
    failed: 0,
    results: [{ i: first, id: 'x' }],
    attempt: 9,
    ACL: {},
  });
  const answers = await bulkCreate('BatchMemoryChunk', [row(0), row(500)]);
  expect(answers.map((answer) => (answer.success ? 'written' : answer.error?.code))).toEqual([137, 'written']);
  const P = parse();
  const rows = await new P.Query('BatchMemoryChunk').equalTo('batch', P.Object.fromJSON({ className: 'BatchMemoryRequest', objectId: done.batch_id })).find(master);
  expect(rows.filter((chunk) => chunk.get('key') === `${done.batch_id}:0`)).toHaveLength(1);
  expect(rows.find((chunk) => chunk.get('key') === `${done.batch_id}:500`)?.get('attempt')).toBe(9);
});
