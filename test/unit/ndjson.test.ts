/** jsonDocumentToNdjson: a JSON document of memories becomes NDJSON lines however it is cut into chunks. */
import fc from 'fast-check';
import { MemoriesDocumentError, jsonDocumentToNdjson } from '../../client';

async function convert(chunks: (string | Uint8Array)[]): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of jsonDocumentToNdjson(chunks)) lines.push(line);
  return lines;
}

function cut(text: string, at: number[]): string[] {
  const bounds = [0, ...[...new Set(at)].filter((i) => i > 0 && i < text.length).sort((a, b) => a - b), text.length];
  return bounds.slice(1).map((end, i) => text.slice(bounds[i], end));
}

const tricky = [
  { content: 'brackets ] } [ { and , commas', tags: ['a"b', 'c\\'] },
  { content: 'unicode: café, 日本語, emoji 🎉', metadata: { nested: { list: [1, 2.5, -3e2, true, null, { deep: '}]' }] } } },
  { content: 'escaped \\"quote\\" and \\n newline\nreal newline' },
];

test.each([
  ['an array', JSON.stringify(tricky)],
  ['an array, pretty-printed', JSON.stringify(tricky, null, 2)],
  ['an object with other keys around "memories"', JSON.stringify({ namespace: 'x', memoriesCount: [3], memories: tricky, trailer: { memories: [{ content: 'ignored' }] } }, null, 1)],
])('%s gives one compact line per memory, however it is chunked', async (_name, document) => {
  const expected = tricky.map((memory) => `${JSON.stringify(memory)}\n`);
  expect(await convert([document])).toEqual(expected);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.nat({ max: document.length }), { maxLength: 12 }), async (at) => {
      expect(await convert(cut(document, at))).toEqual(expected);
    }),
    { numRuns: 200 },
  );
  const bytes = Buffer.from(document);
  expect(await convert(Array.from(bytes, (byte) => Uint8Array.of(byte)))).toEqual(expected);
});

test.each([
  ['[{"content":"a"},{"content":"b"}', 'document ends before its closing bracket (truncated?)'],
  ['{"other":[{"content":"a"}]}', 'document holds no memories: expected an array, or an object with a "memories" array'],
  ['[{"content":"a"}] [', 'document holds more than one JSON value'],
  ['"memories"', 'document holds no memories: expected an array, or an object with a "memories" array'],
  ['42', 'document must be a JSON array or object'],
  ['[{"content":"a"}}', 'document has a "}" that closes nothing it opened'],
  ['[{"content":"a"},{"content":"b",},{"content":"c"}]', 'memories[1] is not valid JSON'],
])('%s is refused: %s', async (document, message) => {
  const error = await convert([document]).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(MemoriesDocumentError);
  expect((error as Error).message).toContain(message);
});

test('bytes that are not UTF-8 are refused', async () => {
  await expect(convert([Buffer.from('[{"content":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]')])).rejects.toThrow('document is not valid UTF-8');
});
