/**
 * The REST route, `/api/v1/memory/batch`, on the same Express app as Parse Server.
 * It is a second door to the same BatchService the Cloud Functions use.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIPv4 } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import express from 'express';
import type { Config } from '../config';
import type { Logger } from '../config/log';
import { fileURL, masterHeaders, type ParseEndpoint } from '../schema/batchFile';
import { idOf } from '../schema/classes';
import {
  type BatchMemoryResponse,
  type BatchStatusResponse,
  type MemoryItem,
  batchOptionsSchema,
  describeDetails,
  forbiddenKeyPath,
  formatPath,
  limitedMemoryItemSchema,
  validationDetails,
} from '../schema/memory';
import { type Actor, type BatchService, filesExpiredError, isTerminal } from './batchService';
import { BatchError, retryRead } from './errors';
import { openApiDocument } from './openapi';

const master = { useMasterKey: true };
const BATCH_ID = /^[A-Za-z0-9]{1,64}$/;
const EVENTS_POLL_MS = 500;
const EVENTS_KEEPALIVE_MS = 15_000;

type Handler = (req: express.Request, res: express.Response) => Promise<void>;

interface AuthedRequest extends express.Request {
  actor?: Actor;
}

/** HTTP status of a batch answer: 200 all done and well, 207 finished with problems, 202 still running. */
export function httpStatusOf(response: BatchMemoryResponse): number {
  if (response.status === 'pending' || response.status === 'processing') return 202;
  return response.status === 'completed' && response.failed === 0 ? 200 : 207;
}

function sendError(res: express.Response, error: BatchError): void {
  if (error.status === 429) res.setHeader('Retry-After', '60');
  res.status(error.status).json({ error: { code: error.code, message: error.message, details: error.details } });
}

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** Which addresses may use the master key: PARSE_MASTER_KEY_IPS, as Parse Server itself applies it. Built once, checked per request. */
export function masterKeyIps(allowed: string): (address: string | undefined) => boolean {
  const list = new BlockList();
  for (const entry of allowed.split(',').map((ip) => ip.trim()).filter(Boolean)) {
    const [ip, bits] = entry.split('/');
    const type = isIPv4(ip) ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(ip, type);
    else list.addSubnet(ip, Number(bits), type);
  }
  return (address) => {
    if (!address) return false;
    const candidate = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;
    return list.check(candidate, isIPv4(candidate) ? 'ipv4' : 'ipv6');
  };
}

/** Per-caller fixed one-minute windows; in-process (each Parse Server instance counts on its own). */
function rateLimiter(limit: number) {
  const windows = new Map<string, { start: number; count: number }>();
  return (key: string) => {
    const now = Date.now();
    const window = windows.get(key);
    if (!window || now - window.start >= 60_000) {
      if (windows.size > 100_000) windows.clear();
      windows.set(key, { start: now, count: 1 });
      return;
    }
    window.count++;
    if (window.count > limit) throw new BatchError(429, 'rate_limited', `rate limit of ${limit} requests per minute exceeded (REST_RATE_LIMIT); retry after the Retry-After seconds`);
  };
}

/** The user behind a session token, or undefined if the token is unknown or expired. */
/** Memories of an NDJSON body, validated one line at a time; the body is never held in memory whole. */
async function* ndjsonMemories(body: Readable, config: Config, hash: ReturnType<typeof createHash>): AsyncGenerator<MemoryItem> {
  const itemSchema = limitedMemoryItemSchema(config.MAX_MEMORY_SIZE);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const maxLine = config.MAX_MEMORY_SIZE * 2 + 1024;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let received = 0;
  let index = 0;

  const parseLine = (bytes: Buffer): MemoryItem | undefined => {
    const at = `memories[${index}]`;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new BatchError(400, 'invalid_request', `invalid batch: ${at} (line ${index + 1}) is not valid UTF-8`, [{ path: at, index, message: 'is not valid UTF-8' }]);
    }
    if (text.trim() === '') return undefined;
    if (index >= config.MAX_STREAM_BATCH_SIZE) {
      throw new BatchError(413, 'too_large', `invalid batch: memories must contain at most MAX_STREAM_BATCH_SIZE = ${config.MAX_STREAM_BATCH_SIZE} memories`, [
        { path: 'memories', field: 'memories', message: `must contain at most ${config.MAX_STREAM_BATCH_SIZE} memories`, limit: config.MAX_STREAM_BATCH_SIZE },
      ]);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new BatchError(400, 'invalid_request', `invalid batch: ${at} (line ${index + 1}) is not valid JSON: ${(error as Error).message}`, [{ path: at, index, message: 'is not valid JSON' }]);
    }
    const forbidden = forbiddenKeyPath(value);
    if (forbidden) {
      const path = `${at}.${formatPath(forbidden)}`;
      throw new BatchError(400, 'invalid_request', `invalid batch: ${path} is not an allowed key`, [{ path, index, field: formatPath(forbidden), message: 'is not an allowed key' }]);
    }
    const parsed = itemSchema.safeParse(value);
    if (!parsed.success) {
      const details = validationDetails(parsed.error).map((d) => ({ ...d, index, path: d.path ? `${at}.${d.path}` : at, ...(d.path ? { field: d.path } : {}) }));
      const tooBig = details.some((d) => d.limit !== undefined && !d.field);
      throw new BatchError(tooBig ? 413 : 400, tooBig ? 'too_large' : 'invalid_request', `invalid batch: ${describeDetails(details)}`, details);
    }
    return parsed.data;
  };

  for await (const chunk of body as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > config.REST_MAX_STREAM_BYTES) {
      throw new BatchError(413, 'too_large', `request body exceeds REST_MAX_STREAM_BYTES = ${config.REST_MAX_STREAM_BYTES} bytes`, [
        { path: 'body', message: 'is too large', limit: config.REST_MAX_STREAM_BYTES },
      ]);
    }
    hash.update(chunk);
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      pending.push(chunk.subarray(start, newline));
      const item = parseLine(Buffer.concat(pending));
      pending = [];
      pendingBytes = 0;
      start = newline + 1;
      if (item) {
        index++;
        yield item;
      }
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > maxLine) {
        throw new BatchError(413, 'too_large', `invalid batch: memories[${index}] (line ${index + 1}) is longer than ${maxLine} bytes (MAX_MEMORY_SIZE = ${config.MAX_MEMORY_SIZE})`, [
          { path: `memories[${index}]`, index, message: 'is too large', limit: config.MAX_MEMORY_SIZE },
        ]);
      }
    }
  }
  if (pendingBytes > 0) {
    const item = parseLine(Buffer.concat(pending));
    if (item) yield item;
  }
}

/** The request body as a stream, decompressed when Content-Encoding says gzip. */
function bodyStream(req: express.Request): Readable {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding === 'identity') return req;
  if (encoding !== 'gzip') throw new BatchError(415, 'invalid_request', `Content-Encoding ${encoding} is not supported (use gzip or none)`);
  const gunzip = zlib.createGunzip();
  req.pipe(gunzip);
  req.on('error', (error) => gunzip.destroy(error));
  return gunzip;
}

function wantsToWait(req: express.Request, bodyWait?: boolean): boolean | undefined {
  if (req.query.wait === 'false' || /respond-async/i.test(String(req.headers.prefer ?? ''))) return false;
  if (req.query.wait === 'true') return true;
  return bodyWait;
}

function statusResponse(batch: Parse.Object, base: string): BatchStatusResponse {
  const iso = (value: unknown) => (value instanceof Date ? value.toISOString() : undefined);
  const id = idOf(batch);
  return {
    batch_id: id,
    status: batch.get('status'),
    total: batch.get('totalMemories'),
    processed: batch.get('processedMemories') ?? 0,
    failed: batch.get('failedMemories') ?? 0,
    ...(batch.get('error') ? { error: String(batch.get('error')) } : {}),
    created_at: iso(batch.createdAt) as string,
    updated_at: iso(batch.updatedAt) as string,
    ...(iso(batch.get('startedAt')) ? { started_at: iso(batch.get('startedAt')) } : {}),
    ...(iso(batch.get('completedAt')) ? { completed_at: iso(batch.get('completedAt')) } : {}),
    ...(batch.get('resultsFile') ? { results_url: `${base}/${id}/results` } : {}),
    ...(iso(batch.get('filesExpiredAt')) ? { files_expired_at: iso(batch.get('filesExpiredAt')) } : {}),
    ...(batch.get('retryOf') ? { retry_of: idOf(batch.get('retryOf')) } : {}),
    ...(batch.get('webhookUrl')
      ? {
          webhook: {
            status: batch.get('webhookStatus') ?? 'pending',
            attempts: batch.get('webhookAttempts') ?? 0,
            ...(iso(batch.get('webhookDeliveredAt')) ? { delivered_at: iso(batch.get('webhookDeliveredAt')) } : {}),
            ...(batch.get('webhookError') ? { error: String(batch.get('webhookError')) } : {}),
          },
        }
      : {}),
  };
}

export function batchRouter(service: BatchService, config: Config, endpoint: ParseEndpoint, log: Logger): express.Router {
  const router = express.Router();
  const limit = rateLimiter(config.REST_RATE_LIMIT);
  const masterKeyAllowedFrom = masterKeyIps(config.PARSE_MASTER_KEY_IPS);
  const json = express.json({ limit: config.REST_MAX_JSON_BYTES, type: ['application/json', 'application/*+json'] });
  const base = '/api/v1/memory/batch';

  // A read whose database connection dropped under it is tried again rather than answered with a 500.
  const handle = (handler: Handler): express.RequestHandler => (req, res, next) => {
    (req.method === 'GET' ? retryRead(() => handler(req, res), () => !res.headersSent) : handler(req, res)).catch(next);
  };

  const authenticate: express.RequestHandler = (req, _res, next) => {
    (async () => {
      const request = req as AuthedRequest;
      const masterKey = req.get('X-Parse-Master-Key');
      if (masterKey !== undefined) {
        if (!safeEqual(masterKey, config.PARSE_MASTER_KEY)) throw new BatchError(401, 'unauthorized', 'the master key is not valid');
        if (!masterKeyAllowedFrom(req.socket.remoteAddress)) {
          throw new BatchError(403, 'forbidden', `the master key is not accepted from ${req.socket.remoteAddress} (PARSE_MASTER_KEY_IPS)`);
        }
        request.actor = { master: true };
        limit('master');
        return;
      }
      const bearer = /^Bearer\s+(\S+)$/i.exec(req.get('Authorization') ?? '')?.[1];
      const token = req.get('X-Parse-Session-Token') ?? bearer;
      if (!token) throw new BatchError(401, 'unauthorized', 'authentication required: send X-Parse-Session-Token or Authorization: Bearer <session token>');
      const user = await retryRead(() => service.parse.userOfSession(token));
      if (!user) throw new BatchError(401, 'unauthorized', 'the session token is invalid or expired');
      request.actor = { master: false, user, sessionToken: token };
      limit(`user:${idOf(user)}`);
    })().then(() => next(), next);
  };

  router.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });

  router.use('/memory/batch', authenticate);

  router.post(
    '/memory/batch',
    (req, res, next) => (req.is('application/x-ndjson') ? next() : json(req, res, next)),
    handle(async (req, res) => {
      const actor = (req as AuthedRequest).actor as Actor;
      const idempotencyKey = req.get('Idempotency-Key') || undefined;
      let answer;
      if (req.is('application/x-ndjson')) {
        const query = Object.fromEntries(Object.entries(req.query).filter(([key]) => key !== 'wait'));
        const parsed = batchOptionsSchema.safeParse(query);
        if (!parsed.success) {
          const details = validationDetails(parsed.error);
          throw new BatchError(400, 'invalid_request', `invalid batch options: ${describeDetails(details)}`, details);
        }
        const hash = createHash('sha256');
        answer = await service.submitStream(actor, { ...parsed.data, wait: wantsToWait(req) }, ndjsonMemories(bodyStream(req), config, hash), () => hash.digest('hex'), { idempotencyKey });
      } else if (req.is('application/json')) {
        const body = (req.body ?? {}) as Record<string, unknown>;
        const wait = wantsToWait(req, typeof body.wait === 'boolean' ? body.wait : undefined);
        answer = await service.submit(actor, { ...body, ...(wait === undefined ? {} : { wait }) }, { idempotencyKey });
      } else {
        throw new BatchError(415, 'invalid_request', `Content-Type must be application/json or application/x-ndjson (got ${req.get('Content-Type') ?? 'none'})`);
      }
      const status = httpStatusOf(answer.response);
      if (status === 202) res.setHeader('Location', `${base}/${answer.response.batch_id}`);
      if (!answer.created) res.setHeader('Idempotent-Replayed', 'true');
      res.status(status).json(answer.response);
    }),
  );

  router.get(
    '/memory/batch/:id',
    handle(async (req, res) => {
      const batch = await loadFor(req);
      res.json(statusResponse(batch, base));
    }),
  );

  router.get(
    '/memory/batch/:id/results',
    handle(async (req, res) => {
      const batch = await loadFor(req);
      if (batch.get('filesExpiredAt')) throw filesExpiredError(batch);
      const file = batch.get('resultsFile') as Parse.File | undefined;
      if (!file) throw new BatchError(409, 'conflict', `batch ${idOf(batch)} has not finished (status ${batch.get('status')}); poll ${base}/${idOf(batch)}`);
      // Streamed from file storage through gunzip: a large result set is never built in memory.
      const download = await fetch(fileURL(endpoint, file.name()), { headers: masterHeaders(endpoint) });
      if (!download.ok || !download.body) throw new Error(`results file of batch ${idOf(batch)} could not be read: HTTP ${download.status}`);
      res.status(200).type('application/x-ndjson');
      await pipeline(Readable.fromWeb(download.body as import('node:stream/web').ReadableStream), zlib.createGunzip(), res);
    }),
  );

  router.get(
    '/memory/batch/:id/events',
    handle(async (req, res) => {
      const batch = await loadFor(req);
      res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
      res.flushHeaders();
      let closed = false;
      req.on('close', () => (closed = true));
      let last = '';
      let lastWrite = Date.now();
      // Polls the request (cheap, and works across Parse Server instances) and sends each change.
      while (!closed) {
        const status = statusResponse(await batch.fetch(master), base);
        const data = JSON.stringify(status);
        if (data !== last) {
          res.write(`event: progress\ndata: ${data}\n\n`);
          last = data;
          lastWrite = Date.now();
        } else if (Date.now() - lastWrite >= EVENTS_KEEPALIVE_MS) {
          // A comment line keeps proxies with idle timeouts from closing a quiet stream.
          res.write(': keepalive\n\n');
          lastWrite = Date.now();
        }
        if (isTerminal(status.status)) break;
        await new Promise((resolve) => setTimeout(resolve, EVENTS_POLL_MS));
      }
      res.end();
    }),
  );

  router.post(
    '/memory/batch/:id/retry',
    handle(async (req, res) => {
      const actor = (req as AuthedRequest).actor as Actor;
      const { response } = await service.retryFailed(actor, batchIdOf(req));
      res.status(202).setHeader('Location', `${base}/${response.batch_id}`);
      res.json(response);
    }),
  );

  router.post(
    '/memory/batch/:id/cancel',
    handle(async (req, res) => {
      const actor = (req as AuthedRequest).actor as Actor;
      res.json(await service.cancel(actor, batchIdOf(req)));
    }),
  );

  async function loadFor(req: express.Request): Promise<Parse.Object> {
    const actor = (req as AuthedRequest).actor as Actor;
    return service.store.load(batchIdOf(req), actor.master ? { master: true } : { sessionToken: actor.sessionToken });
  }

  router.use((error: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => {
    if (res.headersSent) return next(error);
    if (error instanceof BatchError) return sendError(res, error);
    const httpError = error as { type?: string; status?: number; limit?: number; message?: string };
    if (httpError.type === 'entity.too.large') {
      return sendError(res, new BatchError(413, 'too_large', `request body exceeds REST_MAX_JSON_BYTES = ${config.REST_MAX_JSON_BYTES} bytes`, [{ path: 'body', message: 'is too large', limit: config.REST_MAX_JSON_BYTES }]));
    }
    if (httpError.type === 'entity.parse.failed' || httpError.type === 'encoding.unsupported' || httpError.type === 'charset.unsupported') {
      return sendError(res, new BatchError(400, 'invalid_request', `request body is not valid JSON: ${httpError.message}`, [{ path: 'body', message: 'is not valid JSON' }]));
    }
    if ((error as { code?: string }).code === 'Z_DATA_ERROR' || (error as { code?: string }).code === 'Z_BUF_ERROR') {
      return sendError(res, new BatchError(400, 'invalid_request', `request body is not valid gzip: ${(error as Error).message}`, [{ path: 'body', message: 'is not valid gzip' }]));
    }
    log.error('REST route failed', { error, stack: (error as Error).stack });
    res.status(500).json({ error: { code: 'internal', message: 'internal error', details: [] } });
  });

  return router;
}

function batchIdOf(req: express.Request): string {
  const id = String(req.params.id);
  if (!BATCH_ID.test(id)) throw new BatchError(404, 'not_found', `batch ${id} not found`);
  return id;
}

