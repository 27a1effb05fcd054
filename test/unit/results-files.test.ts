/** Results written in files below Parse Server's maxUploadSize: how the text is cut, and the bound on each file's gzip. */
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { resultsFileMaxText, storeInFiles } from '../../worker/resultsFiles';

async function* chunksOf(...texts: string[]): AsyncGenerator<string> {
  yield* texts;
}

/** Stores each file in memory: answers the stored files' texts, in order. */
async function stored(chunks: AsyncIterable<string>, maxBytes: number): Promise<string[]> {
  const files: string[] = [];
  const names = await storeInFiles(
    chunks,
    maxBytes,
    async (text) => {
      let file = '';
      for await (const piece of text) file += piece;
      files.push(file);
      return `file-${files.length - 1}`;
    },
    async () => undefined,
  );
  expect(names).toEqual(files.map((_, k) => `file-${k}`));
  return files;
}

const line = (k: number, error = '') => `${JSON.stringify({ index: k, success: !error, ...(error ? { error } : { memory_id: `id${k}` }) })}\n`;

test('pages of lines are cut at line ends into files of at most the bound; read in order they are the text', async () => {
  const pages = Array.from({ length: 40 }, (_, page) => Array.from({ length: 25 }, (_, k) => line(page * 25 + k, k % 7 === 0 ? 'refusé: ünïcode ✓' : '')).join(''));
  const files = await stored(chunksOf(...pages), 2000);
  expect(files.join('')).toBe(pages.join(''));
  expect(files.length).toBeGreaterThan(10);
  for (const file of files) {
    expect(Buffer.byteLength(file)).toBeLessThanOrEqual(2000);
    expect(file.endsWith('\n')).toBe(true);
  }
});

test('no results still make one (empty) file; text within the bound makes one; a line longer than the bound goes alone', async () => {
  expect(await stored(chunksOf(), 100)).toEqual(['']);
  expect(await stored(chunksOf(line(0), line(1)), 1000)).toEqual([line(0) + line(1)]);
  const long = line(1, 'x'.repeat(300));
  expect(await stored(chunksOf(line(0) + long + line(2)), 100)).toEqual([line(0), long, line(2)]);
});

test('a failed store discards the files stored before it', async () => {
  const discarded: string[] = [];
  let stores = 0;
  const storing = storeInFiles(
    chunksOf(line(0), line(1), line(2)),
    line(0).length,
    async (text) => {
      for await (const piece of text) void piece;
      if (++stores === 3) throw new Error('upload refused');
      return `file-${stores}`;
    },
    async (name) => {
      discarded.push(name);
    },
  );
  await expect(storing).rejects.toThrow('upload refused');
  expect(discarded).toEqual(['file-1', 'file-2']);
});

test.each([64 * 1024, 1024 * 1024])('text of the bound for an upload limit of %i bytes gzips within it, even when it does not compress', (limit) => {
  const text = randomBytes(resultsFileMaxText(limit));
  for (const level of [1, 3, 9]) expect(zlib.gzipSync(text, { level }).length).toBeLessThanOrEqual(limit);
  expect(text.length).toBeGreaterThan(limit * 0.99 - 1024);
});
