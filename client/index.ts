/**
 * Typed HTTP client of the REST route `/api/v1/memory/batch`: submit batches (JSON, or NDJSON
 * streamed with gzip), follow them, cancel them and read their per-item results. Every answer
 * is checked against the zod schemas the server validates with, never cast.
 *
 * Also the package's light entry, `parse-temporal-batch-memory/client`: it loads neither Parse Server,
 * nor Temporal, nor the Dashboard, and carries webhook verification for a receiver.
 */
import { Readable, pipeline } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { setTimeout as delay } from 'node:timers/promises';
import zlib from 'node:zlib';
import type { z } from 'zod';
import { configVariables } from '../config';
import {
  type BatchListResponse,
  type BatchMemoryResponse,
  type BatchStatusResponse,
  type MemoryProcessingResult,
  type ResultsQuery,
  TERMINAL_STATUSES,
  type batchListQuerySchema,
  type batchOptionsFields,
  batchListResponseSchema,
  batchMemoryResponseSchema,
  batchStatusResponseSchema,
  describeDetails,
  type DryRunResponse,
  dryRunResponseSchema,
  errorResponseSchema,
  type memoryItemSchema,
  memoryProcessingResultSchema,
  type streamOptionsFields,
  validationDetails,
} from '../schema/memory';
import type { Chunks } from './ndjson';

export { type Chunks, MemoriesDocumentError, jsonDocumentToNdjson } from './ndjson';
export { WEBHOOK_HEADERS, type WebhookEvent, type WebhookVerification, signWebhook, verifyWebhookSignature, webhookEventSchema } from '../schema/webhook';

export const DEFAULT_APP_ID = configVariables.PARSE_APP_ID.schema.parse(undefined);
export const DEFAULT_SERVER_URL = `http://localhost:${configVariables.PORT.schema.parse(undefined)}`;
const REST_PATH = '/api/v1/memory/batch';
const DEFAULT_POLL_INTERVAL_MS = 1000;

export type ErrorDetail = z.infer<typeof errorResponseSchema>['error']['details'][number];
export type MemoryInput = z.input<typeof memoryItemSchema>;
/** Options of a batch; the idempotency key, waiting and the acting user are set through the client. */
export type BatchSettings = Omit<z.input<typeof batchOptionsFields>, 'idempotency_key' | 'wait' | 'user_id'>;
/**
 * Options of a streamed batch: those of any batch, and `process`. 'after_upload' (the server's default):
 * all or nothing, processed once the whole body has arrived valid. 'while_uploading': each part processed as
 * it is stored; a bad line later refuses the upload with `batchId` set on the BatchApiError, naming the
 * batch that holds (and processes) the memories before it.
 */
export type StreamSettings = Omit<z.input<typeof streamOptionsFields>, 'idempotency_key' | 'wait' | 'user_id'>;
export type BatchRequestBody = BatchSettings & { memories: MemoryInput[] };

/**
 * A session token (sent as `X-Parse-Session-Token`, or `Authorization: Bearer` with `bearer`), or the
 * master key, which acts for `userId` when submitting and may read and cancel any batch.
 */
export type BatchMemoryAuth = { sessionToken: string; bearer?: boolean } | { masterKey: string; userId?: string };

export interface BatchMemoryClientOptions {
  /** Where the server listens, e.g. http://localhost:1337; a Parse server URL ending in /parse is accepted too. */
  serverUrl: string;
  auth: BatchMemoryAuth;
  appId?: string;
}

export interface SubmitOptions {
  /** The same key with the same body answers with the same batch instead of creating another. */
  idempotencyKey?: string;
  /** false: answer (202) once the batch is stored; otherwise the server waits up to its BATCH_WAIT_TIMEOUT. */
  wait?: boolean;
  signal?: AbortSignal;
}

export interface BatchSubmission {
  /** 200 completed with every memory stored, 207 finished with problems, 202 still running. */
  httpStatus: number;
  /** True when the idempotency key matched an earlier batch, which is the one answered with. */
  replayed: boolean;
  batch: BatchMemoryResponse;
}

export interface WaitOptions {
  /** Give up after this long with a BatchWaitTimeoutError (the batch keeps running). */
  timeoutMs?: number;
  /** Called with every status seen, the terminal one included. */
  onProgress?: (status: BatchStatusResponse) => void;
  /** `events` follows the server-sent events stream; `poll` asks for the status every pollIntervalMs. */
  via?: 'events' | 'poll';
  /** Interval of polling, and pause before following an events stream again that ended early. */
  pollIntervalMs?: number;
  signal?: AbortSignal;
}

/** An error answer of the REST route (status 0 when no answer arrived at all). */
export class BatchApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[] = [],
    /** A batch the refused upload created all the same (process: 'while_uploading'): it holds the memories before the refused line. */
    readonly batchId?: string,
  ) {
    super(message);
    this.name = 'BatchApiError';
  }
}

/** The wait ran out before the batch finished; the batch itself keeps running. */
export class BatchWaitTimeoutError extends Error {
  constructor(
    readonly batchId: string,
    readonly timeoutMs: number,
    readonly lastStatus: BatchStatusResponse | undefined,
  ) {
    super(`batch ${batchId} did not finish within ${timeoutMs} ms (last status ${lastStatus?.status ?? 'unknown'})`);
    this.name = 'BatchWaitTimeoutError';
  }
}

/** True once a batch has reached a terminal status: completed, failed, cancelled or deleted. */
export function isFinished(status: BatchStatusResponse | BatchMemoryResponse): boolean {
  return TERMINAL_STATUSES.includes(status.status);
}

/** Lines of a response body, decoded as UTF-8 as they arrive; stops reading when the consumer stops. */
async function* bodyLines(response: Response): AsyncGenerator<string> {
  if (!response.body) return;
  const body = Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>);
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      let start = 0;
      for (let newline = buffered.indexOf('\n', start); newline !== -1; newline = buffered.indexOf('\n', start)) {
        yield buffered.slice(start, newline).replace(/\r$/, '');
        start = newline + 1;
      }
      buffered = buffered.slice(start);
    }
    buffered += decoder.decode();
    if (buffered) yield buffered;
  } finally {
    body.destroy();
  }
}

export class BatchMemoryClient {
  /** Base URL of the batch route, e.g. http://localhost:1337/api/v1/memory/batch. */
  readonly batchUrl: string;
  private readonly headers: Record<string, string>;
  private readonly actingUserId: string | undefined;

  constructor(options: BatchMemoryClientOptions) {
    const origin = options.serverUrl.replace(/\/+$/, '').replace(/\/parse$/, '');
    this.batchUrl = `${origin}${REST_PATH}`;
    const { auth } = options;
    this.headers = {
      'X-Parse-Application-Id': options.appId ?? DEFAULT_APP_ID,
      ...('masterKey' in auth ? { 'X-Parse-Master-Key': auth.masterKey } : auth.bearer ? { Authorization: `Bearer ${auth.sessionToken}` } : { 'X-Parse-Session-Token': auth.sessionToken }),
    };
    this.actingUserId = 'masterKey' in auth ? auth.userId : undefined;
  }

  /** Where a batch's per-item results can be downloaded (JSON Lines) once it has finished. */
  resultsUrl(batchId: string): string {
    return `${this.batchUrl}/${encodeURIComponent(batchId)}/results`;
  }

  /** Submits a batch as one JSON body (up to the server's MAX_BATCH_SIZE memories). */
  async add(request: BatchRequestBody, options: SubmitOptions = {}): Promise<BatchSubmission> {
    const body = JSON.stringify({ ...request, ...(this.actingUserId ? { user_id: this.actingUserId } : {}) });
    const response = await this.request(this.waitQuery(options.wait), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...this.idempotencyHeader(options.idempotencyKey) },
      body,
      signal: options.signal,
    });
    return this.submission(response);
  }

  /**
   * Submits a batch streamed as NDJSON (one memory per line), gzip-compressed on the way, so a file of
   * any size (up to the server's MAX_STREAM_BATCH_SIZE memories) is never held in memory.
   */
  async addNdjson(lines: Chunks, settings: StreamSettings = {}, options: SubmitOptions = {}): Promise<BatchSubmission> {
    const query = this.streamQuery(settings);
    if (options.wait !== undefined) query.set('wait', String(options.wait));
    return this.submission(await this.postNdjson(lines, query, options));
  }

  /** Validates a batch exactly as `add` would submit it, storing and starting nothing (the route's dry run). */
  async check(request: BatchRequestBody): Promise<DryRunResponse> {
    const body = JSON.stringify({ ...request, ...(this.actingUserId ? { user_id: this.actingUserId } : {}) });
    const response = await this.request('?dry_run=true', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    return this.parsed(dryRunResponseSchema, await this.json(response), `POST ${REST_PATH}?dry_run=true`, response.status);
  }

  /** Validates an NDJSON batch of any size exactly as `addNdjson` would submit it, every bad line counted; nothing is stored. */
  async checkNdjson(lines: Chunks, settings: StreamSettings = {}): Promise<DryRunResponse> {
    const query = this.streamQuery(settings);
    query.set('dry_run', 'true');
    const response = await this.postNdjson(lines, query, {});
    return this.parsed(dryRunResponseSchema, await this.json(response), `POST ${REST_PATH}?dry_run=true`, response.status);
  }

  /** A streamed batch's settings as the route reads them from the query string (metadata as JSON text). */
  private streamQuery(settings: StreamSettings): URLSearchParams {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...settings, user_id: this.actingUserId })) {
      if (value !== undefined) query.set(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
    }
    return query;
  }

  /** POSTs NDJSON lines gzip-compressed on the way; a failing source ends the upload with its own error. */
  private async postNdjson(lines: Chunks, query: URLSearchParams, options: SubmitOptions): Promise<Response> {
    const compressed = zlib.createGzip();
    let sourceError: Error | undefined;
    // The callback form destroys every stream on an error, so a failing source ends the upload instead of stalling it.
    pipeline(lines, compressed, (error) => {
      sourceError = error ?? undefined;
    });
    try {
      return await this.request(query.size ? `?${query}` : '', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-ndjson', 'Content-Encoding': 'gzip', ...this.idempotencyHeader(options.idempotencyKey) },
        body: Readable.toWeb(compressed) as ReadableStream<Uint8Array>,
        // fetch requires this for a request body that is a stream.
        duplex: 'half',
        signal: options.signal,
      });
    } catch (error) {
      throw sourceError ?? error;
    } finally {
      compressed.destroy();
    }
  }

  /** Status, counts and timestamps of a batch. */
  async get(batchId: string, options: { signal?: AbortSignal } = {}): Promise<BatchStatusResponse> {
    const response = await this.request(`/${encodeURIComponent(batchId)}`, { signal: options.signal });
    return this.parsed(batchStatusResponseSchema, await this.json(response), `GET ${REST_PATH}/:id`, response.status);
  }

  /** A page of the user's own batches (the master key's acting user), newest first, filtered; give the answer's `next_cursor` as `after` for the next page. */
  async list(query: z.input<typeof batchListQuerySchema> = {}): Promise<BatchListResponse> {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries({ ...query, user_id: this.actingUserId })) if (value !== undefined) search.set(key, String(value));
    const response = await this.request(search.size ? `?${search}` : '', {});
    return this.parsed(batchListResponseSchema, await this.json(response), `GET ${REST_PATH}`, response.status);
  }

  /** Starts a new batch of the items a finished batch did not store. */
  async retryFailed(batchId: string): Promise<BatchMemoryResponse> {
    const response = await this.request(`/${encodeURIComponent(batchId)}/retry`, { method: 'POST' });
    return this.parsed(batchMemoryResponseSchema, await this.json(response), `POST ${REST_PATH}/:id/retry`, response.status);
  }

  /** Stops a batch; memories written so far stay. Answers once the batch has stopped. */
  async cancel(batchId: string): Promise<BatchMemoryResponse> {
    const response = await this.request(`/${encodeURIComponent(batchId)}/cancel`, { method: 'POST' });
    return this.parsed(batchMemoryResponseSchema, await this.json(response), `POST ${REST_PATH}/:id/cancel`, response.status);
  }

  /**
   * Undoes an import: the server removes every memory the batch created and its stored files, stopping a running
   * batch first. Answers as the deletion begins (status `deleting`; `deleted` for a repeat); `wait` follows it to `deleted`.
   */
  async delete(batchId: string): Promise<BatchStatusResponse> {
    const response = await this.request(`/${encodeURIComponent(batchId)}`, { method: 'DELETE' });
    return this.parsed(batchStatusResponseSchema, await this.json(response), `DELETE ${REST_PATH}/:id`, response.status);
  }

  /** Per-item results of a finished batch, in batch order, read as they stream in; filtered (`status`) and ranged (`after` an index, `limit`) by the server. */
  async *results(batchId: string, options: { signal?: AbortSignal } & ResultsQuery = {}): AsyncGenerator<MemoryProcessingResult> {
    const { signal, ...query } = options;
    const search = new URLSearchParams(Object.entries(query).flatMap(([key, value]) => (value === undefined ? [] : [[key, String(value)]])));
    const response = await this.request(`/${encodeURIComponent(batchId)}/results${search.size ? `?${search}` : ''}`, { signal });
    let line = 0;
    for await (const text of bodyLines(response)) {
      line++;
      if (text.trim() === '') continue;
      yield this.parsed(memoryProcessingResultSchema, this.jsonOf(text, `results line ${line}`, response.status), `results line ${line}`, response.status);
    }
  }

  /** The batch's status at each change, from the server-sent events stream, until the batch finishes. */
  async *events(batchId: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<BatchStatusResponse> {
    const response = await this.request(`/${encodeURIComponent(batchId)}/events`, { signal: options.signal, headers: { Accept: 'text/event-stream' } });
    let event = 'message';
    let data: string[] = [];
    for await (const line of bodyLines(response)) {
      if (line === '') {
        if (event === 'progress' && data.length) {
          yield this.parsed(batchStatusResponseSchema, this.jsonOf(data.join('\n'), 'progress event', response.status), 'progress event', response.status);
        }
        event = 'message';
        data = [];
      } else if (line.startsWith('event:')) {
        event = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
    }
  }

  /** Resolves with the batch's terminal status (completed, failed, cancelled, or deleted after a delete). */
  async wait(batchId: string, options: WaitOptions = {}): Promise<BatchStatusResponse> {
    const interval = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    const deadline = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
    const signal = AbortSignal.any([options.signal, deadline].filter((s): s is AbortSignal => s !== undefined));
    let last: BatchStatusResponse | undefined;
    try {
      for (;;) {
        const updates = options.via === 'poll' ? this.poll(batchId, interval, signal) : this.events(batchId, { signal });
        for await (const status of updates) {
          last = status;
          options.onProgress?.(status);
          if (isFinished(status)) return status;
        }
        // The stream ended before the batch did (a restarted server, a proxy's timeout): follow it again.
        await delay(interval, undefined, { signal });
      }
    } catch (error) {
      if (deadline?.aborted && options.timeoutMs !== undefined) throw new BatchWaitTimeoutError(batchId, options.timeoutMs, last);
      throw error;
    }
  }

  private async *poll(batchId: string, intervalMs: number, signal: AbortSignal): AsyncGenerator<BatchStatusResponse> {
    for (;;) {
      yield await this.get(batchId, { signal });
      await delay(intervalMs, undefined, { signal });
    }
  }

  private waitQuery(wait: boolean | undefined): string {
    return wait === undefined ? '' : `?wait=${wait}`;
  }

  private idempotencyHeader(key: string | undefined): Record<string, string> {
    return key ? { 'Idempotency-Key': key } : {};
  }

  private async submission(response: Response): Promise<BatchSubmission> {
    return {
      httpStatus: response.status,
      replayed: response.headers.get('Idempotent-Replayed') === 'true',
      batch: this.parsed(batchMemoryResponseSchema, await this.json(response), `POST ${REST_PATH}`, response.status),
    };
  }

  /** Sends a request to the batch route; an error answer becomes a BatchApiError. */
  private async request(path: string, init: RequestInit & { headers?: Record<string, string>; duplex?: 'half' }): Promise<Response> {
    const url = `${this.batchUrl}${path}`;
    let response: Response;
    try {
      response = await fetch(url, { ...init, headers: { ...this.headers, ...init.headers } });
    } catch (error) {
      if (init.signal?.aborted) throw init.signal.reason;
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
      throw new BatchApiError(0, 'unreachable', `cannot reach ${url}: ${cause}`);
    }
    if (!response.ok) throw await this.errorOf(response);
    return response;
  }

  private async errorOf(response: Response): Promise<BatchApiError> {
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const parsed = errorResponseSchema.safeParse(body);
    if (parsed.success) return new BatchApiError(response.status, parsed.data.error.code, parsed.data.error.message, parsed.data.error.details, parsed.data.error.batch_id);
    return new BatchApiError(response.status, 'http_error', `HTTP ${response.status} ${response.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`);
  }

  private async json(response: Response): Promise<unknown> {
    return this.jsonOf(await response.text(), 'the answer', response.status);
  }

  private jsonOf(text: string, what: string, status: number): unknown {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new BatchApiError(status, 'invalid_response', `${what} is not valid JSON: ${(error as Error).message}`);
    }
  }

  private parsed<T extends z.ZodType>(schema: T, value: unknown, what: string, status: number): z.output<T> {
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    const details = validationDetails(result.error);
    throw new BatchApiError(status, 'invalid_response', `unexpected answer to ${what}: ${describeDetails(details)}`, details);
  }
}
