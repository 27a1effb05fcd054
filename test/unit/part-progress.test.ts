/** PartProgress: what one attempt of processPart counts, looks up and writes, whatever earlier attempts left. */
import { PartProgress, writesOf } from '../../worker/partProgress';
import type { ChunkResult } from '../../schema/records';
import type { MemoryItem } from '../../schema/memory';

const LIMITS = { BATCH_WRITE_MAX_ITEMS: 1000, BATCH_WRITE_MAX_BYTES: 10_000_000 };
/** Part 1 of a batch: memories 100 to 349, in chunks of 100 (the last one of 50). */
const PART = { name: 'part-1', first: 100, count: 250 };
const items = (count: number, first = 0): MemoryItem[] => Array.from({ length: count }, (_, k) => ({ content: `memory ${first + k}` }));
/** The results of a chunk of `count` memories from `first`, the ones in `failing` refused. */
const results = (first: number, count: number, failing: number[] = []): ChunkResult[] =>
  Array.from({ length: count }, (_, k) => (failing.includes(first + k) ? { i: first + k, e: 'refused' } : { i: first + k, id: `m${first + k}` }));

test('a first attempt writes every chunk, cut from the part at the chunk size, and counts what each write stored', () => {
  const progress = new PartProgress(PART, 100);
  expect(progress.pending).toEqual([100, 200, 300]);
  const [write, ...rest] = progress.writesLeft(items(250, 100), { ...LIMITS, BATCH_WRITE_MAX_ITEMS: 200 });
  expect(write.map(({ first, items }) => [first, items[0].content, items.length])).toEqual([
    [100, 'memory 100', 100],
    [200, 'memory 200', 100],
  ]);
  expect(rest.map((w) => w.map(({ first, items }) => [first, items.length]))).toEqual([[[300, 50]]]);
  const added = progress.written(write, [results(100, 100, [105]), results(200, 100)], [true, true]);
  expect(added).toEqual({ processed: 199, failed: 1 });
  expect(progress.totals).toEqual({ processed: 199, failed: 1 });
  expect(progress.pending).toEqual([300]);
  expect(progress.mustLookUp).toBe(false);
});

test('a retry counts the chunks earlier attempts recorded and writes only the others', () => {
  const progress = new PartProgress(PART, 100);
  progress.recordedEarlier([{ first: 200, processed: 98, failed: 2 }]);
  expect(progress.pending).toEqual([100, 300]);
  expect(progress.writesLeft(items(250, 100), LIMITS).map((w) => w.map(({ first, items }) => [first, items.length]))).toEqual([
    [
      [100, 100],
      [300, 50],
    ],
  ]);
  expect(progress.totals).toEqual({ processed: 98, failed: 2 });
  const write = progress.writesLeft(items(250, 100), LIMITS)[0];
  expect(progress.written(write, [results(100, 100), results(300, 50)], [true, true])).toEqual({ processed: 150, failed: 0 });
  expect(progress.totals).toEqual({ processed: 248, failed: 2 });
  expect(progress.pending).toEqual([]);
});

test('a write that finds a chunk recorded already asks for one lookup, and the lookup drops the chunks done since', () => {
  const progress = new PartProgress(PART, 100);
  const [first, ...rest] = progress.writesLeft(items(250, 100), { ...LIMITS, BATCH_WRITE_MAX_ITEMS: 100 });
  expect(rest).toHaveLength(2);
  // A reset workflow: an earlier run recorded chunks 100 and 300, the request's counters hold them already.
  expect(progress.written(first, [results(100, 100)], [false])).toEqual({ processed: 0, failed: 0 });
  expect(progress.mustLookUp).toBe(true);
  progress.recordedEarlier([
    { first: 100, processed: 100, failed: 0 },
    { first: 300, processed: 49, failed: 1 },
  ]);
  expect(progress.mustLookUp).toBe(false);
  expect(progress.pending).toEqual([200]);
  // The chunk this attempt wrote is counted once, not again from its row.
  expect(progress.totals).toEqual({ processed: 149, failed: 1 });
  const [write] = progress.writesLeft(items(250, 100), LIMITS);
  progress.written(write, [results(200, 100)], [false]);
  // Looked up once already: nothing more to read, whatever a later write finds.
  expect(progress.mustLookUp).toBe(false);
  expect(progress.totals).toEqual({ processed: 249, failed: 1 });
});

test('a part whose every chunk was recorded has nothing left to write', () => {
  const progress = new PartProgress({ name: 'only', first: 0, count: 30 }, 100);
  progress.recordedEarlier([{ first: 0, processed: 30, failed: 0 }]);
  expect(progress.pending).toEqual([]);
  expect(progress.writesLeft(items(30), LIMITS)).toEqual([]);
  expect(progress.totals).toEqual({ processed: 30, failed: 0 });
});

test('writesOf cuts at the item and the byte limit, with at least one chunk in each write', () => {
  const chunk = (first: number, count: number, bytes = 10) => ({ first, items: Array.from({ length: count }, () => ({ content: 'x'.repeat(bytes) })) });
  const shape = (writes: ReturnType<typeof writesOf>) => writes.map((w) => w.map(({ first }) => first));
  expect(shape(writesOf([chunk(0, 10), chunk(10, 10), chunk(20, 10)], { BATCH_WRITE_MAX_ITEMS: 20, BATCH_WRITE_MAX_BYTES: 1e6 }))).toEqual([[0, 10], [20]]);
  const oneItem = Buffer.byteLength(JSON.stringify({ content: 'x'.repeat(100) }));
  expect(shape(writesOf([chunk(0, 1, 100), chunk(1, 1, 100), chunk(2, 1, 100)], { BATCH_WRITE_MAX_ITEMS: 100, BATCH_WRITE_MAX_BYTES: 2 * oneItem }))).toEqual([[0, 1], [2]]);
  // A chunk larger than both limits still goes, alone.
  expect(shape(writesOf([chunk(0, 50), chunk(50, 1)], { BATCH_WRITE_MAX_ITEMS: 10, BATCH_WRITE_MAX_BYTES: 10 }))).toEqual([[0], [50]]);
});
