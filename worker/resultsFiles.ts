/**
 * A batch's per-item results as one or more stored files, each below Parse Server's maxUploadSize: the worker
 * uploads them through Parse Server's files route, which refuses a larger file (a batch of millions of items has
 * results of hundreds of MB). Read one after another, the files are the results in order.
 */

/** gzip stores text that does not compress in blocks of 64 KiB with 5 bytes each, plus its header and trailer. */
const GZIP_OVERHEAD_PER_BYTE = 5 / 65_535;
const GZIP_FRAME_BYTES = 1024;

/** The most text in one results file whose gzip is sure to stay within `maxUploadBytes`, however little it compresses. */
export function resultsFileMaxText(maxUploadBytes: number): number {
  return Math.floor((maxUploadBytes - GZIP_FRAME_BYTES) / (1 + GZIP_OVERHEAD_PER_BYTE));
}

/**
 * Splits text that arrives in whole lines into files of at most `maxBytes` (UTF-8), cut at line ends, and stores
 * each with `store` as it is produced; answers the stored names in order, at least one. A single line longer than
 * `maxBytes` goes in a file alone. If a store fails, the files stored before it are discarded.
 */
export async function storeInFiles(
  chunks: AsyncIterable<string>,
  maxBytes: number,
  store: (text: AsyncIterable<string>) => Promise<string>,
  discard: (name: string) => Promise<void>,
): Promise<string[]> {
  const source = chunks[Symbol.asyncIterator]();
  let pending: string | undefined;
  let ended = false;
  async function* file(): AsyncGenerator<string> {
    let bytes = 0;
    for (;;) {
      let text = pending;
      pending = undefined;
      if (text === undefined) {
        const next = await source.next();
        if (next.done) {
          ended = true;
          return;
        }
        text = next.value;
      }
      const size = Buffer.byteLength(text);
      if (bytes + size <= maxBytes) {
        bytes += size;
        yield text;
        continue;
      }
      // The lines that fit close this file; the rest begins the next. A line end is never inside a UTF-8 character.
      const buffer = Buffer.from(text);
      const room = maxBytes - bytes;
      // (lastIndexOf counts a negative offset from the end: a full file has no room at all.)
      const fits = room > 0 ? buffer.lastIndexOf(0x0a, room - 1) + 1 : 0;
      const cut = fits > 0 ? fits : bytes > 0 ? 0 : buffer.indexOf(0x0a) + 1 || buffer.length;
      if (cut > 0) yield buffer.subarray(0, cut).toString();
      if (cut < buffer.length) pending = buffer.subarray(cut).toString();
      return;
    }
  }
  const names: string[] = [];
  try {
    do names.push(await store(file()));
    while (!ended || pending !== undefined);
  } catch (error) {
    await Promise.all(names.map(discard));
    throw error;
  }
  return names;
}
