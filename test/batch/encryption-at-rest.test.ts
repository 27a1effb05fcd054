/**
 * Stored batch and results files are encrypted at rest, not only compressed: the bytes on disk hold
 * neither a memory's text nor the gzip stream of the file, while the master key's download through
 * Parse Server is that gzip stream of the JSON Lines.
 */
import { randomUUID } from 'node:crypto';
import zlib from 'node:zlib';
import type { MemoryItem, MemoryProcessingResult } from '../../schema/memory';
import { fileStorage } from '../support/fileStorage';
import { addMemoryBatch, getBatch, http, master, newUser, parse } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';

/** A file as the files adapter keeps it (on disk, or in GridFS on MongoDB), and as the master key downloads it through Parse Server. */
async function storedFile(name: string): Promise<{ onDisk: Buffer; downloaded: Buffer }> {
  const onDisk = await fileStorage(stackInfo().env).read(name);
  const response = await http(`/files/${stackInfo().appId}/${encodeURIComponent(name)}`, { headers: { 'X-Parse-Master-Key': stackInfo().masterKey } });
  expect(response.status).toBe(200);
  return { onDisk, downloaded: Buffer.from(await response.arrayBuffer()) };
}

const linesOf = (gzipped: Buffer) =>
  zlib
    .gunzipSync(gzipped)
    .toString('utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as unknown);

/** Neither `texts` nor the gzip stream (any 32 bytes of it) appear in the bytes on disk, which are not gzip themselves. */
function expectEncrypted({ onDisk, downloaded }: { onDisk: Buffer; downloaded: Buffer }, texts: string[]): void {
  for (const text of texts) expect(onDisk.includes(Buffer.from(text))).toBe(false);
  for (let offset = 0; offset + 32 <= downloaded.length; offset += 32) expect(onDisk.includes(downloaded.subarray(offset, offset + 32))).toBe(false);
  expect(() => zlib.gunzipSync(onDisk)).toThrow();
}

test('batch parts and the results file are encrypted on disk; the master key reads back their gzip JSON Lines', async () => {
  const P = parse();
  const { sessionToken } = await newUser('at-rest');
  const marker = `okapi-${randomUUID()}`;
  // 150 memories: two part files on the test stack (100 memories to a part).
  const items: MemoryItem[] = Array.from({ length: 150 }, (_, index) => ({ content: `${marker} memory ${index}: the vault code is ${randomUUID()}`, metadata: { index } }));
  const answer = await addMemoryBatch(sessionToken, { memories: items });
  expect(answer).toMatchObject({ success: true, status: 'completed', total: 150, processed: 150 });

  const batch = await getBatch(answer.batch_id);
  const parts = await new P.Query('BatchMemoryPart').equalTo('partsKey', batch.get('partsKey')).ascending('index').find(master);
  expect(parts).toHaveLength(2);
  for (const part of parts) {
    const file = await storedFile(part.get('name'));
    const stored = items.slice(part.get('first'), part.get('first') + part.get('count'));
    expect(linesOf(file.downloaded)).toEqual(stored);
    expectEncrypted(file, [marker, ...stored.map((item) => item.content)]);
  }

  const results = await storedFile((batch.get('resultsFile') as { name(): string }).name());
  const lines = linesOf(results.downloaded) as MemoryProcessingResult[];
  expect(lines).toHaveLength(150);
  const memoryIds = lines.map((line) => line.memory_id ?? '');
  expect(memoryIds.every((id) => /^\w{10}$/.test(id))).toBe(true);
  expectEncrypted(results, [...memoryIds, '"success":true']);
});
