/**
 * Where a batch's files and bulk rows go, behind one interface: the stored part and results files, and
 * bulk creates of memories, chunk and part rows. Two adapters implement it, as Parse Server's controllers
 * sit over their adapters: in Parse Server's process through its own controllers (cloud/inProcess.ts), and
 * from the worker over HTTP with the master key (storage/http.ts). What the product does with them (read a
 * part, find a part's index row, read the recorded chunks) is written once, here.
 */
import type { Readable } from 'node:stream';
import Parse from 'parse/node';
import { decodeLines } from '../schema/batchFile';
import { CLASS, partKey } from '../schema/classes';
import { CHUNK_ROW_FIELDS, type ChunkRow, type StoredPart, chunkRowOf, partRecordOf } from '../schema/records';

const master = { useMasterKey: true };

/** The answer for one created object, in the shape of Parse Server's /batch answers. */
export type CreateAnswer = { success: { objectId: string } } | { error: { code: number; error: string } };

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
  /** Stores a file as Parse's files route would; answers the stored name (with Parse's random prefix). */
  uploadFile(name: string, data: Buffer, contentType?: string): Promise<string>;
  /** A stored file's bytes; a missing one is a FileStorageError with status 404. */
  downloadFile(name: string): Promise<Buffer>;
  /** A stored file's bytes as a stream, for a file not to be held in memory whole. */
  openFile(name: string): Promise<Readable>;
  /** Deletes a file; one that is already gone is fine. */
  deleteFile(name: string): Promise<void>;
  /** Creates rows of a class without triggers (memories, chunk and part rows), one answer each. */
  createObjects(className: string, objects: Record<string, unknown>[]): Promise<CreateAnswer[]>;
}

export class BatchStorage implements BatchStorageAdapter {
  constructor(private readonly adapter: BatchStorageAdapter) {}

  uploadFile(name: string, data: Buffer, contentType?: string): Promise<string> {
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

  createObjects(className: string, objects: Record<string, unknown>[]): Promise<CreateAnswer[]> {
    return this.adapter.createObjects(className, objects);
  }

  /** The lines of a stored file: a part's memories, a batch's results (callers check access first). */
  async readLines<T>(name: string): Promise<T[]> {
    return decodeLines<T>(await this.adapter.downloadFile(name));
  }

  /** The index row of part `index` of a batch, read with the master key. */
  async findPart(partsKey: string, index: number): Promise<StoredPart | undefined> {
    const row = await new Parse.Query(CLASS.part).equalTo('key', partKey(partsKey, index)).first(master);
    return row && partRecordOf(row);
  }

  /** The recorded chunks of a batch (of one part, when given), in batch order, read with the master key. */
  async chunkRows(batchId: string, part?: number): Promise<ChunkRow[]> {
    const batch = Parse.Object.fromJSON({ className: CLASS.batch, objectId: batchId });
    const rows: ChunkRow[] = [];
    let after = -1;
    for (;;) {
      const query = new Parse.Query(CLASS.chunk).equalTo('batch', batch).greaterThan('first', after).ascending('first').select(...CHUNK_ROW_FIELDS).limit(1000);
      if (part !== undefined) query.equalTo('part', part);
      const page = await query.find(master);
      for (const row of page) rows.push(chunkRowOf(row));
      if (page.length < 1000) return rows;
      after = rows[rows.length - 1].first;
    }
  }
}
