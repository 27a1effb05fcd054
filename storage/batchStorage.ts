/**
 * Where a batch's files and bulk rows go, behind one interface: the stored part and results files, and
 * bulk creates of memories, chunk and part rows. Two adapters implement it, as Parse Server's controllers
 * sit over their adapters: in Parse Server's process through its own controllers (cloud/inProcess.ts), and
 * from the worker over HTTP with the master key (storage/http.ts). What the product does with them (read a
 * part, find a part's index row, read the recorded chunks) is written once, here.
 */
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import Parse from '../schema/parseSdk';
import { CorruptFileError, STORE_REFUSED_CODE, decodeLines } from '../schema/batchFile';
import { CLASS, partKey } from '../schema/classes';
import { CHUNK_ROW_FIELDS, type ChunkRow, type StoredPart, chunkRowOf, partRecordOf } from '../schema/records';

const master = { useMasterKey: true };

/** The answer for one created object, in the shape of Parse Server's /batch answers. */
export type CreateAnswer = { success: { objectId: string } } | { error: { code: number; error: string } };

/** A unique key refused the object (Parse error 137, DUPLICATE_VALUE): written by an earlier attempt of the same write. */
export const DUPLICATE_ANSWER: CreateAnswer = { error: { code: 137, error: 'A duplicate value for a field with unique values was provided' } };

/** The database refused the object's data, for `reason` (STORE_REFUSED_CODE): it fails alone. */
export function storeRefused(reason: string): CreateAnswer {
  return { error: { code: STORE_REFUSED_CODE, error: reason } };
}

/** A file storage request that failed; `status` is HTTP's (404: missing, or not decryptable with FILES_ENCRYPTION_KEY). */
export class FileStorageError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'FileStorageError';
  }
}

export interface BatchStorageAdapter {
  /**
   * Stores a file as Parse's files route would; answers the stored name (with Parse's random prefix). A stream
   * is stored as it is produced, for a file not to be built in memory whole.
   */
  uploadFile(name: string, data: Buffer | Readable, contentType?: string): Promise<string>;
  /** A stored file's bytes; a missing one is a FileStorageError with status 404. */
  downloadFile(name: string): Promise<Buffer>;
  /** A stored file's bytes as a stream, for a file not to be held in memory whole. */
  openFile(name: string): Promise<Readable>;
  /** Deletes a file; one that is already gone is fine. */
  deleteFile(name: string): Promise<void>;
  /**
   * Creates rows of a class without triggers (memories, chunk and part rows), one answer each; each row also
   * gets the `shared` fields, which go once rather than in every object.
   */
  createObjects(className: string, objects: Record<string, unknown>[], shared?: Record<string, unknown>): Promise<CreateAnswer[]>;
  /** Deletes up to `limit` rows of one of those classes that belong to a batch; answers how many it found (0: none are left). */
  deleteBatchRows(className: string, batchId: string, limit: number): Promise<number>;
}

export class BatchStorage implements BatchStorageAdapter {
  constructor(private readonly adapter: BatchStorageAdapter) {}

  uploadFile(name: string, data: Buffer | Readable, contentType?: string): Promise<string> {
    return this.adapter.uploadFile(name, data, contentType);
  }

  downloadFile(name: string): Promise<Buffer> {
    return this.adapter.downloadFile(name);
  }

  openFile(name: string): Promise<Readable> {
    return this.adapter.openFile(name);
  }

  deleteFile(name: string): Promise<void> {
    return this.adapter.deleteFile(name);
  }

  createObjects(className: string, objects: Record<string, unknown>[], shared?: Record<string, unknown>): Promise<CreateAnswer[]> {
    return this.adapter.createObjects(className, objects, shared);
  }

  deleteBatchRows(className: string, batchId: string, limit: number): Promise<number> {
    return this.adapter.deleteBatchRows(className, batchId, limit);
  }

  /** The lines of a stored file: a part's memories, a batch's results (callers check access first). */
  async readLines<T>(name: string): Promise<T[]> {
    return decodeLines<T>(await this.adapter.downloadFile(name));
  }

  /**
   * The lines of a stored file one at a time, streamed through gunzip: a reader that stops early (a page of a
   * large results file) reads no further, and no reader holds the whole file.
   */
  async *streamLines<T>(name: string): AsyncGenerator<T> {
    const download = await this.adapter.openFile(name);
    const text = download.pipe(zlib.createGunzip());
    const lines = readline.createInterface({ input: text, crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (!line) continue;
        let item: T;
        try {
          item = JSON.parse(line) as T;
        } catch (error) {
          throw new CorruptFileError((error as Error).message);
        }
        yield item;
      }
    } finally {
      lines.close();
      text.destroy();
      download.destroy();
    }
  }

  /** The index row of part `index` of a batch, read with the master key. */
  async findPart(partsKey: string, index: number): Promise<StoredPart | undefined> {
    const row = await new Parse.Query(CLASS.part).equalTo('key', partKey(partsKey, index)).first(master);
    return row && partRecordOf(row);
  }

  /**
   * The recorded chunks of a batch (`partCount` parts), in batch order, read with the master key part after part
   * and at most `pageSize` rows at a time: a caller that handles each page before the next holds one page only.
   * Each query names its part: FerretDB (DATABASE_FERRETDB) filters in its database on equalities only, then
   * sorts and limits what they matched, so a page of the whole batch read every chunk row of the batch
   * (finalizing 100,000 memories read 10,000 rows 50 times); a page of one part reads that part's rows.
   */
  async *chunkRowPages(batchId: string, partCount: number, pageSize = 1000): AsyncGenerator<ChunkRow[]> {
    for (let part = 0; part < partCount; part++) yield* this.partChunkRowPages(batchId, part, pageSize);
  }

  /** The recorded chunks of one part of a batch, in order, `pageSize` rows at a time. */
  async *partChunkRowPages(batchId: string, part: number, pageSize = 1000): AsyncGenerator<ChunkRow[]> {
    const batch = Parse.Object.fromJSON({ className: CLASS.batch, objectId: batchId });
    let after = -1;
    for (;;) {
      const query = new Parse.Query(CLASS.chunk)
        .equalTo('batch', batch)
        .equalTo('part', part)
        .greaterThan('first', after)
        .ascending('first')
        .select(...CHUNK_ROW_FIELDS)
        .limit(pageSize);
      const page = (await query.find(master)).map(chunkRowOf);
      if (page.length > 0) yield page;
      if (page.length < pageSize) return;
      after = page[page.length - 1].first;
    }
  }

  /** Every recorded chunk of one part of a batch, in order. */
  async chunkRows(batchId: string, part: number): Promise<ChunkRow[]> {
    const rows: ChunkRow[] = [];
    for await (const page of this.partChunkRowPages(batchId, part)) rows.push(...page);
    return rows;
  }
}
