/** The stored file format: gzip JSON Lines, read back the same at any level; anything else is a CorruptFileError. */
import zlib from 'node:zlib';
import fc from 'fast-check';
import { CorruptFileError, decodeLines, encodeLines } from '../../schema/batchFile';

test('lines read back as written, at every gzip level', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.jsonValue(), { maxLength: 20 }), fc.integer({ min: 0, max: 9 }), async (values, level) => {
      const stored = await encodeLines(
        values.map((value) => JSON.stringify(value)),
        level,
      );
      expect(await decodeLines(stored)).toEqual(values.map((value) => JSON.parse(JSON.stringify(value))));
    }),
  );
});

test.each([
  ['bytes that are not gzip', Buffer.from('{"content":"plain"}\n')],
  ['gzip cut short', zlib.gzipSync('{"content":"a"}\n').subarray(0, 12)],
  ['gzip of a line that is not JSON', zlib.gzipSync('{"content":\n')],
])('%s is a CorruptFileError', async (_name, stored) => {
  await expect(decodeLines(stored)).rejects.toBeInstanceOf(CorruptFileError);
});
