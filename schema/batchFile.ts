/**
 * The claim-check file format: a batch is stored as one or more gzip-compressed
 * JSON Lines "parts" in Parse File storage, so that one part can be read without
 * downloading the whole batch. Each part is indexed by a BatchMemoryPart row under
 * the request's `partsKey`.
 */
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import Parse from 'parse/node';
import { CLASS, partKey } from './classes';
import { type ChunkRow, CHUNK_ROW_FIELDS, type StoredPart, chunkRowOf, partRecordOf } from './records';

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

export function masterHeaders(endpoint: ParseEndpoint): Record<string, string> {
  return { 'X-Parse-Application-Id': endpoint.appId, 'X-Parse-Master-Key': endpoint.masterKey };
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

/** The bulk create route for a class, in the app that serves `endpoint` (mounted beside Parse Server's path). */
export function bulkWriteURL(endpoint: ParseEndpoint, className: string): string {
  return new URL(`..${BULK_WRITE_PATH}/${className}`, `${endpoint.serverURL.replace(/\/$/, '')}/`).toString();
}

export class FileStorageError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'FileStorageError';
  }
}

export interface MasterResponse {
  status: number;
  ok: boolean;
  body: Buffer;
}

// Kept-alive connections: fetch() costs about four times the CPU of node:http per request here, and the
// worker makes one request per write of a batch. An idle connection is dropped after 4 s, before Node's
// server closes its end (5 s), so that a request is never sent on a connection being closed.
const agentOptions = { keepAlive: true, timeout: 4000 };
const agents = { 'http:': new http.Agent(agentOptions), 'https:': new https.Agent(agentOptions) };

export interface MasterRequestInit {
  method?: string;
  body?: Buffer | string;
  contentType?: string;
  /** Safe to send twice (GET and DELETE are): then a request whose connection was reset is sent once more. */
  idempotent?: boolean;
  /** The body names the app and carries the key, as the Parse SDK's requests do: no key headers then. */
  keyInBody?: boolean;
}

/** One request to the app serving `endpoint`, with the master key. */
export async function masterRequest(endpoint: ParseEndpoint, url: string, init: MasterRequestInit = {}): Promise<MasterResponse> {
  const method = init.method ?? 'GET';
  try {
    return await sendOnce(endpoint, url, method, init);
  } catch (error) {
    if ((error as { code?: string }).code !== 'ECONNRESET' || !(init.idempotent ?? (method === 'GET' || method === 'DELETE'))) throw error;
    return sendOnce(endpoint, url, method, init);
  }
}

function sendOnce(endpoint: ParseEndpoint, url: string, method: string, { body, contentType, keyInBody }: MasterRequestInit): Promise<MasterResponse> {
  const target = new URL(url);
  const headers: Record<string, string | number> = { ...(keyInBody ? {} : masterHeaders(endpoint)), ...(contentType ? { 'Content-Type': contentType } : {}) };
  if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = transport.request(target, { method, headers, agent: agents[target.protocol as keyof typeof agents] }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const status = response.statusCode ?? 0;
        resolve({ status, ok: status >= 200 && status < 300, body: Buffer.concat(chunks) });
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Uploads raw bytes through Parse Server's files route; returns the stored name. */
export async function uploadFile(endpoint: ParseEndpoint, name: string, data: Buffer, contentType = 'application/gzip'): Promise<string> {
  const response = await masterRequest(endpoint, `${endpoint.serverURL}/files/${encodeURIComponent(name)}`, { method: 'POST', body: data, contentType });
  if (!response.ok) throw new FileStorageError(`upload of ${name} failed: HTTP ${response.status} ${response.body.toString()}`, response.status);
  return (JSON.parse(response.body.toString()) as { name: string }).name;
}

export async function downloadFile(endpoint: ParseEndpoint, name: string): Promise<Buffer> {
  const response = await masterRequest(endpoint, fileURL(endpoint, name));
  if (!response.ok) throw new FileStorageError(`download of ${name} failed: HTTP ${response.status}`, response.status);
  return response.body;
}

export async function deleteFile(endpoint: ParseEndpoint, name: string): Promise<void> {
  const response = await masterRequest(endpoint, `${endpoint.serverURL}/files/${encodeURIComponent(name)}`, { method: 'DELETE' });
  if (!response.ok && response.status !== 404) throw new FileStorageError(`delete of ${name} failed: HTTP ${response.status}`, response.status);
}

/** The index row of part `index` of a batch, read with the master key. */
export async function findPart(partsKey: string, index: number): Promise<StoredPart | undefined> {
  const row = await new Parse.Query(CLASS.part).equalTo('key', partKey(partsKey, index)).first({ useMasterKey: true });
  return row && partRecordOf(row);
}

/** The recorded chunks of a batch (of one part, when given), in batch order, read with the master key. */
export async function chunkRows(batchId: string, part?: number): Promise<ChunkRow[]> {
  const batch = Parse.Object.fromJSON({ className: CLASS.batch, objectId: batchId });
  const rows: ChunkRow[] = [];
  let after = -1;
  for (;;) {
    const query = new Parse.Query(CLASS.chunk).equalTo('batch', batch).greaterThan('first', after).ascending('first').select(...CHUNK_ROW_FIELDS).limit(1000);
    if (part !== undefined) query.equalTo('part', part);
    const page = await query.find({ useMasterKey: true });
    for (const row of page) rows.push(chunkRowOf(row));
    if (page.length < 1000) return rows;
    after = rows[rows.length - 1].first;
  }
}

/** The items of one stored part (master key: callers check access first). */
export async function readPart<T>(endpoint: ParseEndpoint, part: Pick<StoredPart, 'name'>): Promise<T[]> {
  return decodeLines<T>(await downloadFile(endpoint, part.name));
}

/** Names of stored files that belong to this product: file triggers refuse them to anything but the master key. */
export const STORED_FILE_PREFIX = 'bmr-';
export function isBatchFileName(name: string): boolean {
  return name.startsWith(STORED_FILE_PREFIX) || name.includes(`_${STORED_FILE_PREFIX}`);
}
