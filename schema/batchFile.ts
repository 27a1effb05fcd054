/**
 * The claim-check file format: a batch is stored as one or more gzip-compressed
 * JSON Lines "parts" in Parse File storage, so that one part can be read without
 * downloading the whole batch. Each part is indexed by a BatchMemoryPart row under
 * the request's `partsKey`.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import Parse from './parseSdk';
import { z } from 'zod';
import { CLASS } from './classes';
import { BATCH_ID_PATTERN } from './memory';

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);

/** gzip at `level` (BATCH_GZIP_LEVEL): any level reads back the same way. */
export function encodeLines(lines: readonly string[], level: number): Promise<Buffer> {
  return gzip(Buffer.from(`${lines.join('\n')}\n`), { level });
}

/** Stored bytes that are not gzip JSON Lines: reading them again gives the same answer, so nothing retries them. */
export class CorruptFileError extends Error {
  name = 'CorruptFileError';
}

export async function decodeLines<T = unknown>(stored: Buffer): Promise<T[]> {
  try {
    const text = (await gunzip(stored)).toString('utf8');
    return text
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as T);
  } catch (error) {
    throw new CorruptFileError((error as Error).message);
  }
}

/** Where and how to reach Parse Server with the master key. */
export interface ParseEndpoint {
  serverURL: string;
  appId: string;
  masterKey: string;
}

export function fileURL(endpoint: Pick<ParseEndpoint, 'serverURL' | 'appId'>, name: string): string {
  return `${endpoint.serverURL}/files/${encodeURIComponent(endpoint.appId)}/${encodeURIComponent(name)}`;
}

/**
 * A stored file as the value of a row's File field, with the URL Parse Server itself gives the file (under
 * PUBLIC_SERVER_URL): the only host `fileUpload.allowedFileUrlDomains` lets a saved row name.
 */
export function fileField(publicServerURL: string, appId: string, name: string): Parse.File {
  return Parse.File.fromJSON({ __type: 'File', name, url: fileURL({ serverURL: publicServerURL, appId }, name) });
}

/** Bulk creates for the worker, next to the REST route (cloud/bulkWriter.ts). */
export const BULK_WRITE_PATH = '/api/v1/internal/bulk';
export const BULK_CLASSES = [CLASS.memory, CLASS.chunk] as const;

// Each object is checked to be one, not copied key by key: its fields are Parse Server's to check as it stores them.
const parseObjectBody = z.custom<Record<string, unknown>>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), { error: 'must be an object' });
/**
 * The bulk route's body: the objects, and the fields they all share (owner pointers, the batch, the ACL)
 * once rather than in every object; an object's own field wins over a shared one.
 */
export const bulkCreateBody = z.object({
  objects: z.array(parseObjectBody),
  shared: parseObjectBody.optional(),
});
export type BulkCreateBody = z.infer<typeof bulkCreateBody>;

/** Rows of a batch one bulk delete takes at most. */
export const MAX_DELETE_ROWS = 10_000;
/** The bulk route's delete query (`DELETE …/:className?batch=&limit=`): a page of one deleted batch's rows. */
export const bulkDeleteQuery = z.object({
  batch: z.string().regex(BATCH_ID_PATTERN),
  limit: z.coerce.number().int().min(1).max(MAX_DELETE_ROWS),
});

/**
 * The bulk route's error code for an object the database refused for its data (a value it cannot store, a
 * constraint, a trigger of the host's): that object fails alone, with the database's reason; the others are stored.
 */
export const STORE_REFUSED_CODE = 1001;

/** Names of stored files that belong to this product: file triggers refuse them to anything but the master key. */
export const STORED_FILE_PREFIX = 'bmr-';
export function isBatchFileName(name: string): boolean {
  return name.startsWith(STORED_FILE_PREFIX) || name.includes(`_${STORED_FILE_PREFIX}`);
}
