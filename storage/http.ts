/**
 * The storage adapter of a process outside Parse Server (the worker): Parse Server's files route and the
 * app's bulk write route, over HTTP with the master key. Also the one way this package sends a request to
 * Parse Server with the master key (masterRequest), which the worker's Parse SDK transport uses too.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import type { Logger } from '../config/log';
import Parse from '../schema/parseSdk';
import { CLASS } from '../schema/classes';
import { BULK_WRITE_PATH, type BulkCreateBody, type ParseEndpoint, fileURL } from '../schema/batchFile';
import { type BatchStorageAdapter, type CreateAnswer, FileStorageError } from './batchStorage';

const master = { useMasterKey: true };

export function masterHeaders(endpoint: ParseEndpoint): Record<string, string> {
  return { 'X-Parse-Application-Id': endpoint.appId, 'X-Parse-Master-Key': endpoint.masterKey };
}

/** The bulk create route for a class, in the app that serves `endpoint` (mounted beside Parse Server's path). */
export function bulkWriteURL(endpoint: ParseEndpoint, className: string): string {
  return new URL(`..${BULK_WRITE_PATH}/${className}`, `${endpoint.serverURL.replace(/\/$/, '')}/`).toString();
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
  /** A stream goes with chunked transfer encoding, as it is produced, and is never sent twice. */
  body?: Buffer | string | Readable;
  contentType?: string;
  /** Safe to send twice (GET and DELETE are): then a request whose connection was reset is sent once more. */
  idempotent?: boolean;
  /** The body names the app and carries the key, as the Parse SDK's requests do: no key headers then. */
  keyInBody?: boolean;
  headers?: Record<string, string>;
}

/** One request to the app serving `endpoint`, with the master key. */
export async function masterRequest(endpoint: ParseEndpoint, url: string, init: MasterRequestInit = {}): Promise<MasterResponse> {
  const method = init.method ?? 'GET';
  try {
    return await sendOnce(endpoint, url, method, init);
  } catch (error) {
    const resendable = !isStream(init.body) && (init.idempotent ?? (method === 'GET' || method === 'DELETE'));
    if ((error as { code?: string }).code !== 'ECONNRESET' || !resendable) throw error;
    return sendOnce(endpoint, url, method, init);
  }
}

function isStream(body: MasterRequestInit['body']): body is Readable {
  return body instanceof Readable;
}

function sendOnce(endpoint: ParseEndpoint, url: string, method: string, { body, contentType, keyInBody, headers: extra }: MasterRequestInit): Promise<MasterResponse> {
  const target = new URL(url);
  const headers: Record<string, string | number> = { ...(keyInBody ? {} : masterHeaders(endpoint)), ...(contentType ? { 'Content-Type': contentType } : {}), ...extra };
  if (body !== undefined && !isStream(body)) headers['Content-Length'] = Buffer.byteLength(body);
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
    if (!isStream(body)) {
      request.end(body);
      return;
    }
    // A body that fails mid-way aborts the request: the server stores nothing of it.
    body.on('error', (error) => request.destroy(error));
    body.pipe(request);
  });
}

/** A stored file streamed from Parse Server's files route, which decrypts it (FILES_ENCRYPTION_KEY) as it goes. */
export async function openFileOverHttp(endpoint: ParseEndpoint, name: string): Promise<Readable> {
  const download = await fetch(fileURL(endpoint, name), { headers: masterHeaders(endpoint) });
  if (!download.ok || !download.body) throw new FileStorageError(`download of ${name} failed: HTTP ${download.status}`, download.status);
  return Readable.fromWeb(download.body as import('node:stream/web').ReadableStream);
}

export class HttpStorage implements BatchStorageAdapter {
  private readonly mountPath: string;
  /** False once the app answered that it does not mount the bulk write route. */
  private bulkWrites = true;

  constructor(
    private readonly endpoint: ParseEndpoint,
    private readonly log: Logger,
  ) {
    this.mountPath = new URL(endpoint.serverURL).pathname.replace(/\/$/, '');
  }

  async uploadFile(name: string, data: Buffer | Readable, contentType = 'application/gzip'): Promise<string> {
    const { endpoint } = this;
    // A stream goes in Parse Server's stream upload mode: the files route hands it on as it arrives, instead of
    // buffering it and copying it as base64 for file triggers (finalizing a million memories grew Parse Server's
    // RSS by about 100 MB that way).
    const headers: Record<string, string> = isStream(data) ? { 'X-Parse-Upload-Mode': 'stream' } : {};
    const response = await masterRequest(endpoint, `${endpoint.serverURL}/files/${encodeURIComponent(name)}`, { method: 'POST', body: data, contentType, headers });
    if (!response.ok) throw new FileStorageError(`upload of ${name} failed: HTTP ${response.status} ${response.body.toString()}`, response.status);
    return (JSON.parse(response.body.toString()) as { name: string }).name;
  }

  async downloadFile(name: string): Promise<Buffer> {
    const response = await masterRequest(this.endpoint, fileURL(this.endpoint, name));
    if (!response.ok) throw new FileStorageError(`download of ${name} failed: HTTP ${response.status}`, response.status);
    return response.body;
  }

  openFile(name: string): Promise<Readable> {
    return openFileOverHttp(this.endpoint, name);
  }

  async deleteFile(name: string): Promise<void> {
    const { endpoint } = this;
    const response = await masterRequest(endpoint, `${endpoint.serverURL}/files/${encodeURIComponent(name)}`, { method: 'DELETE' });
    if (!response.ok && response.status !== 404) throw new FileStorageError(`delete of ${name} failed: HTTP ${response.status}`, response.status);
  }

  /**
   * Creates objects through the app's bulk write route (Parse Server's database controller), or through
   * Parse Server's /batch endpoint where the app does not mount that route. One answer per object.
   */
  async createObjects(className: string, objects: Record<string, unknown>[], shared: Record<string, unknown> = {}): Promise<CreateAnswer[]> {
    const { endpoint } = this;
    if (this.bulkWrites) {
      // Idempotent: unique keys answer a repeated create as a duplicate. The fields every object shares go once.
      const body: BulkCreateBody = { objects, shared };
      const response = await masterRequest(endpoint, bulkWriteURL(endpoint, className), { method: 'POST', body: JSON.stringify(body), contentType: 'application/json', idempotent: true });
      if (response.ok) return JSON.parse(response.body.toString()) as CreateAnswer[];
      if (response.status !== 404) throw new Error(`bulk create of ${className} answered HTTP ${response.status}: ${response.body.toString().slice(0, 200)}`);
      this.bulkWrites = false;
      this.log.warn('no bulk write route beside Parse Server; writing through /batch', { url: bulkWriteURL(endpoint, className) });
    }
    const requests = objects.map((object) => ({ method: 'POST', path: `${this.mountPath}/classes/${className}`, body: { ...shared, ...object } }));
    const response = await masterRequest(endpoint, `${endpoint.serverURL}/batch`, { method: 'POST', body: JSON.stringify({ requests }), contentType: 'application/json', idempotent: true });
    if (!response.ok) throw new Error(`Parse /batch answered HTTP ${response.status}: ${response.body.toString().slice(0, 200)}`);
    return JSON.parse(response.body.toString()) as CreateAnswer[];
  }

  /** Through the bulk write route (one delete by query), or object by object through Parse's REST API where the app does not mount it. */
  async deleteBatchRows(className: string, batchId: string, limit: number): Promise<number> {
    const { endpoint } = this;
    if (this.bulkWrites) {
      const url = `${bulkWriteURL(endpoint, className)}?batch=${encodeURIComponent(batchId)}&limit=${limit}`;
      const response = await masterRequest(endpoint, url, { method: 'DELETE' });
      if (response.ok) return (JSON.parse(response.body.toString()) as { deleted: number }).deleted;
      if (response.status !== 404) throw new Error(`bulk delete of ${className} answered HTTP ${response.status}: ${response.body.toString().slice(0, 200)}`);
      this.bulkWrites = false;
      this.log.warn('no bulk write route beside Parse Server; deleting through /batch', { url: bulkWriteURL(endpoint, className) });
    }
    const batch = Parse.Object.fromJSON({ className: CLASS.batch, objectId: batchId });
    const rows = await new Parse.Query(className).equalTo('batch', batch).select([]).limit(limit).find(master);
    await Parse.Object.destroyAll(rows, master).catch((error: unknown) => {
      // Deleted meanwhile: gone is what was asked.
      if ((error as Parse.Error).code !== Parse.Error.OBJECT_NOT_FOUND) throw error;
    });
    return rows.length;
  }
}
