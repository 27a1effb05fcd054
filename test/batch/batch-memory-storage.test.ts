/** The storage cases of the requirements (docs/requirements.md §5): store, fetch, access control, limits and compression of the claim-check files. */
import fs from 'node:fs';
import path from 'node:path';
import { type TestUser, addMemoryBatch, getBatch, http, master, memories, newUser, orphanFiles, parse } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';

const info = stackInfo();
const MAX_BATCH_SIZE = Number(info.env.MAX_BATCH_SIZE);
const MAX_MEMORY_SIZE = 10 * 1024 * 1024;

async function batchesOf(user: TestUser): Promise<number> {
  return new (parse().Query)('BatchMemoryRequest').equalTo('user', user.user).count(master);
}

/** Sends the body as written (the SDK would re-encode it) and expects a validation error naming what is wrong. */
async function expectRejected(user: TestUser, body: string | Record<string, unknown>, message: RegExp): Promise<void> {
  const response = await http('/functions/addMemoryBatch', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Parse-Session-Token': user.sessionToken },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  expect(response.status).toBe(400);
  expect(await response.json()).toMatchObject({ code: parse().Error.VALIDATION_ERROR, error: expect.stringMatching(message) });
  expect(await batchesOf(user)).toBe(0);
  await expect(orphanFiles()).resolves.toEqual([]);
}

/** Paragraphs of the license texts every Debian system ships: real English prose. */
function englishCorpus(): { content: string }[] {
  const dir = '/usr/share/common-licenses';
  return fs
    .readdirSync(dir)
    .map((name) => path.join(dir, name))
    .filter((file) => fs.lstatSync(file).isFile())
    .flatMap((file) => fs.readFileSync(file, 'utf8').split(/\n\s*\n/))
    .map((paragraph) => paragraph.replace(/\s+/g, ' ').trim())
    .filter((paragraph) => paragraph.length >= 80)
    .map((content) => ({ content }));
}

describe('batch memory storage', () => {
  test('stores a batch: compressed parts in Parse Files, a pending request, nothing else on the request', async () => {
    const { sessionToken } = await newUser();
    const items = memories(250, 300);
    const response = await addMemoryBatch(sessionToken, { memories: items, wait: false });
    expect(response).toMatchObject({ total: 250, results: [] });
    expect(['pending', 'processing', 'completed']).toContain(response.status);
    const batch = await getBatch(response.batch_id);
    const parts = await new (parse().Query)('BatchMemoryPart').equalTo('partsKey', batch.get('partsKey')).ascending('index').find(master);
    expect(parts.map((p) => [p.get('index'), p.get('first'), p.get('count')])).toEqual([
      [0, 0, 100],
      [1, 100, 100],
      [2, 200, 50],
    ]);
    expect(batch.get('partCount')).toBe(3);
    expect(batch.get('batchFile').name()).toBe(parts[0].get('name'));
    expect(batch.get('totalMemories')).toBe(250);
    expect(batch.get('storedBytes')).toBeLessThan(batch.get('rawBytes'));
  });

  test('fetches the stored data for the owner, one part at a time', async () => {
    const { sessionToken } = await newUser();
    const items = memories(150, 250);
    const { batch_id } = await addMemoryBatch(sessionToken, { memories: items, wait: false });
    const second = (await parse().Cloud.run('getMemoryBatchData', { batch_id, part: 1 }, { sessionToken })) as { first: number; parts: number; memories: unknown[] };
    expect(second).toMatchObject({ first: 100, parts: 2 });
    expect(second.memories).toEqual(items.slice(100));
  });

  test('fetch is denied to another user, to an anonymous client and to a bare file URL', async () => {
    const owner = await newUser('owner');
    const other = await newUser('other');
    const { batch_id } = await addMemoryBatch(owner.sessionToken, { memories: memories(5), wait: false });
    const P = parse();
    await expect(P.Cloud.run('getMemoryBatchData', { batch_id }, { sessionToken: other.sessionToken })).rejects.toMatchObject({ code: P.Error.OBJECT_NOT_FOUND });
    await expect(P.Cloud.run('getMemoryBatchData', { batch_id })).rejects.toMatchObject({ code: P.Error.INVALID_SESSION_TOKEN });
    await expect(new P.Query('BatchMemoryRequest').get(batch_id, { sessionToken: other.sessionToken })).rejects.toMatchObject({ code: P.Error.OBJECT_NOT_FOUND });

    const fileName = (await getBatch(batch_id)).get('batchFile').name() as string;
    const fileUrl = `/files/${info.appId}/${encodeURIComponent(fileName)}`;
    expect((await fetch(`${info.serverURL}${fileUrl}`)).status).toBe(403);
    expect((await http(fileUrl, { headers: { 'X-Parse-Session-Token': owner.sessionToken } })).status).toBe(403);
    expect((await http(fileUrl, { headers: { 'X-Parse-Master-Key': info.masterKey } })).status).toBe(200);
    // The owner's own view of the request hides the file references.
    const ownView = await new P.Query('BatchMemoryRequest').get(batch_id, { sessionToken: owner.sessionToken });
    expect(ownView.get('batchFile')).toBeUndefined();
    expect(ownView.get('partsKey')).toBeUndefined();
    await expect(new P.Query('BatchMemoryPart').equalTo('partsKey', (await getBatch(batch_id)).get('partsKey')).find({ sessionToken: owner.sessionToken })).rejects.toMatchObject({
      code: P.Error.OPERATION_FORBIDDEN,
    });
  });

  test('a memory of exactly MAX_MEMORY_SIZE bytes is stored; one byte more is refused, naming item, field and limit', async () => {
    const { sessionToken } = await newUser();
    const framing = Buffer.byteLength(JSON.stringify({ content: '' }));
    const atLimit = { content: 'a'.repeat(MAX_MEMORY_SIZE - framing) };
    const ok = await addMemoryBatch(sessionToken, { memories: [{ content: 'small' }, atLimit], wait: false });
    expect(ok.total).toBe(2);
    await expectRejected(await newUser(), { memories: [{ content: 'small' }, { content: `${atLimit.content}a` }] }, /memories\[1\] is 10485761 bytes, over MAX_MEMORY_SIZE of 10485760 bytes/);
  });

  test(`more than MAX_BATCH_SIZE memories are refused with the limit named, nothing stored`, async () => {
    await expectRejected(
      await newUser(),
      { memories: Array.from({ length: MAX_BATCH_SIZE + 1 }, (_, i) => ({ content: `m${i}` })) },
      new RegExp(`memories must contain at most MAX_BATCH_SIZE = ${MAX_BATCH_SIZE} memories`),
    );
  });

  test.each([
    [{ memories: [] }, /memories must contain at least 1 memory/],
    [{ memories: [{ content: 'ok' }, { content: '   ' }] }, /memories\[1\]\.content must not be empty/],
    [{ memories: [{ content: 'ok' }, { content: 42 }] }, /memories\[1\]\.content must be a string/],
    ['{"memories":[{"content":"ok","metadata":{"deep":{"constructor":2}}}]}', /memories\[0\]\.metadata\.deep\.constructor is not an allowed key/],
    ['{"memories":[{"content":"ok","metadata":{"__proto__":{"admin":true}}}]}', /memories\[0\]\.metadata\.__proto__ is not an allowed key/],
    [{ memories: [{ content: 'ok', embedding: [0.1, null] }] }, /memories\[0\]\.embedding\[1\] must be a finite number/],
    ['{"memories":[{"content":"ok","embedding":[1e999]}]}', /memories\[0\]\.embedding\[0\] must be a finite number/],
    ['{"memories":[{"content":"\\ud800 lone surrogate"}]}', /memories\[0\]\.content must be valid UTF-8/],
    [{ memories: [{ content: 'ok', colour: 'red' }] }, /memories\[0\]/],
    [{ memories: [{ content: 'ok', tags: ['a', 7] }] }, /memories\[0\]\.tags\[1\] must be a string/],
    [{ memories: 'nope' }, /memories must be an array of memories/],
  ])('invalid structure is refused before anything is stored: %j', async (body, message) => {
    await expectRejected(await newUser(), body, message);
  });

  test('compression of a realistic English corpus is at least 3x', async () => {
    const { sessionToken } = await newUser();
    const corpus = englishCorpus();
    expect(corpus.length).toBeGreaterThan(100);
    const { batch_id } = await addMemoryBatch(sessionToken, { memories: corpus.slice(0, 1000), wait: false });
    const batch = await getBatch(batch_id);
    const ratio = batch.get('rawBytes') / batch.get('storedBytes');
    process.stdout.write(`compression: ${batch.get('rawBytes')} raw bytes -> ${batch.get('storedBytes')} stored bytes, ratio ${ratio.toFixed(2)}x\n`);
    expect(ratio).toBeGreaterThanOrEqual(3);
  });
});
