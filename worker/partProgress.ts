/**
 * The bookkeeping of one attempt of processPart, kept free of I/O so that it can be tested alone: which
 * chunks of the part are recorded (by this attempt or an earlier one), the counts they add up to, when the
 * chunk rows must be read back, and which writes are left to do.
 */
import type { Config } from '../config';
import type { ChunkResult } from '../schema/records';
import type { StoredMemory } from '../schema/memory';
import type { Counts, PartFile } from '../schema/workflow';

/** Consecutive memories of a part, written and recorded together. */
export interface Chunk {
  first: number;
  items: StoredMemory[];
}

/** A chunk as its row records it: where it starts and what it counted. */
export interface RecordedChunk extends Counts {
  first: number;
}

/** Stored and failed items among a chunk's results. */
export function countsOf(results: ChunkResult[]): Counts {
  const failed = results.filter((r) => r.e !== undefined).length;
  return { processed: results.length - failed, failed };
}

/**
 * Groups chunks into writes of at most BATCH_WRITE_MAX_ITEMS memories and BATCH_WRITE_MAX_BYTES bytes
 * (at least one chunk each): one request to Parse Server costs far more than one more memory in it.
 */
export function writesOf(chunks: Chunk[], limits: Pick<Config, 'BATCH_WRITE_MAX_ITEMS' | 'BATCH_WRITE_MAX_BYTES'>): Chunk[][] {
  const writes: Chunk[][] = [];
  let current: Chunk[] = [];
  let items = 0;
  let bytes = 0;
  for (const chunk of chunks) {
    const chunkBytes = chunk.items.reduce((sum, item) => sum + Buffer.byteLength(JSON.stringify(item)), 0);
    if (current.length > 0 && (items + chunk.items.length > limits.BATCH_WRITE_MAX_ITEMS || bytes + chunkBytes > limits.BATCH_WRITE_MAX_BYTES)) {
      writes.push(current);
      current = [];
      items = 0;
      bytes = 0;
    }
    current.push(chunk);
    items += chunk.items.length;
    bytes += chunkBytes;
  }
  if (current.length > 0) writes.push(current);
  return writes;
}

/**
 * One part's progress. Every chunk is counted once, whether this attempt recorded it or found it recorded,
 * so that `totals` is the part's outcome however many attempts it took.
 */
export class PartProgress {
  /** Stored and failed memories of the recorded chunks. */
  readonly totals: Counts = { processed: 0, failed: 0 };
  private readonly starts: number[] = [];
  private readonly counted = new Set<number>();
  private lookedUp = false;
  private foundRecorded = false;

  constructor(
    private readonly part: PartFile,
    private readonly chunkSize: number,
  ) {
    for (let first = part.first; first < part.first + part.count; first += chunkSize) this.starts.push(first);
  }

  /** Takes the chunk rows earlier attempts wrote: those chunks are counted and not written again. */
  recordedEarlier(rows: readonly RecordedChunk[]): void {
    this.lookedUp = true;
    for (const row of rows) this.count(row.first, row);
  }

  /** The first index of each chunk still to record, in order. */
  get pending(): number[] {
    return this.starts.filter((first) => !this.counted.has(first));
  }

  /** The writes still to do, cut from the part's memories (`items[0]` is the part's first memory). */
  writesLeft(items: StoredMemory[], limits: Pick<Config, 'BATCH_WRITE_MAX_ITEMS' | 'BATCH_WRITE_MAX_BYTES'>): Chunk[][] {
    const offset = (first: number) => first - this.part.first;
    return writesOf(
      this.pending.map((first) => ({ first, items: items.slice(offset(first), offset(first) + this.chunkSize) })),
      limits,
    );
  }

  /**
   * Counts a write's chunks, given their results and, for each, whether this attempt recorded it (false: an
   * earlier attempt had). Answers the counts of the chunks this attempt recorded, which the request's
   * counters do not hold yet.
   */
  written(write: Chunk[], results: ChunkResult[][], recorded: boolean[]): Counts {
    const added: Counts = { processed: 0, failed: 0 };
    write.forEach(({ first }, k) => {
      const chunk = countsOf(results[k]);
      if (recorded[k]) {
        added.processed += chunk.processed;
        added.failed += chunk.failed;
      } else this.foundRecorded = true;
      this.count(first, chunk);
    });
    return added;
  }

  /**
   * A write found chunks an earlier attempt had recorded although none were looked up (the first attempt of
   * a reset workflow): the rows must be read once, so that the rest is not written twice.
   */
  get mustLookUp(): boolean {
    return this.foundRecorded && !this.lookedUp;
  }

  private count(first: number, chunk: Counts): void {
    if (this.counted.has(first)) return;
    this.counted.add(first);
    this.totals.processed += chunk.processed;
    this.totals.failed += chunk.failed;
  }
}
