/**
 * The REST route, `/api/v1/memory/batch`, on the same Express app as Parse Server.
 * It is a second door to the same BatchService the Cloud Functions use.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import express from 'express';
import type { Config } from '../config';
import type { Logger } from '../config/log';
import { BATCH_ROUTE, httpStatusOf, listResponse, statusResponse } from '../schema/answers';
import { BATCH_ID_PATTERN, batchListQuerySchema, resultsQuerySchema, streamOptionsSchema } from '../schema/memory';
import { batchRecordOf, resultsFileNames } from '../schema/records';
import type { Actor, AuthedRequest, RouteAuthentication } from './auth';
import { type BatchService, assertFilesKept, resultsNotReady } from './batchService';
import { BatchError, parsedOrRefused, retryRead } from './errors';
import { jsonErrorHandler } from './httpErrors';
import { bodyBounds, type ConcurrencyBound, type ConcurrencySlots, boundedBody, readJsonBody, slotHolder } from './inputBounds';
import { maxNdjsonLineBytes, ndjsonMemories } from './ndjsonBody';
import { openApiDocument } from './openapi';

const EVENTS_KEEPALIVE_MS = 15_000;

type Handler = (req: express.Request, res: express.Response) => Promise<void>;

/** Query string fields for a schema: those named in `numeric` read as numbers when they are digits, anything else left for the schema to name. */
function withNumbers(query: Record<string, unknown>, numeric: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(query).map(([key, value]) => [key, numeric.includes(key) && typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value]));
}

function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function wantsToWait(req: express.Request, bodyWait?: boolean): boolean | undefined {
  if (req.query.wait === 'false' || /respond-async/i.test(String(req.headers.prefer ?? ''))) return false;
  if (req.query.wait === 'true') return true;
  return bodyWait;
}

export function batchRouter(service: BatchService, config: Config, log: Logger, authentication: RouteAuthentication, slots: ConcurrencySlots): express.Router {
  const router = express.Router();
  const optionsSchema = streamOptionsSchema(config.WEBHOOK_ALLOWED_NETWORKS ?? []);
  // A JSON body is bounded by REST_MAX_JSON_BYTES after decompression, which already bounds what inflating it costs.
  const jsonBounds = bodyBounds(config, config.REST_MAX_JSON_BYTES, 'REST_MAX_JSON_BYTES', {
    tooLargeHint: 'send a larger batch as NDJSON (Content-Type: application/x-ndjson, one memory per line), which is streamed into storage',
  });
  // One memory, however repetitive, is judged by MAX_MEMORY_SIZE: the ratio applies past the longest line allowed.
  const ndjsonBounds = bodyBounds(config, config.REST_MAX_STREAM_BYTES, 'REST_MAX_STREAM_BYTES', {
    maxInflateRatio: { ratio: config.REST_MAX_INFLATE_RATIO, afterBytes: maxNdjsonLineBytes(config) },
  });
  const { uploads, eventStreams } = slots;
  /** A slot of `bound` for the caller, released on every way the answer ends (sent, failed, client gone) or earlier by the handler. */
  const slotFor = (bound: ConcurrencyBound, req: express.Request, res: express.Response): (() => void) => {
    const release = bound.take(slotHolder((req as AuthedRequest).actor as Actor));
    // A client gone while it was authenticated has closed already: no 'close' would come to release the slot.
    if (req.socket.destroyed) {
      release();
      throw new BatchError(400, 'invalid_request', 'the client closed the connection');
    }
    res.once('close', release);
    return release;
  };
  const base = BATCH_ROUTE;

  // A read whose database connection dropped under it is tried again rather than answered with a 500.
  const handle =
    (handler: Handler): express.RequestHandler =>
    (req, res, next) => {
      (req.method === 'GET'
        ? retryRead(
            () => handler(req, res),
            () => !res.headersSent,
          )
        : handler(req, res)
      ).catch(next);
    };

  router.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });

  router.use('/memory/batch', authentication.rest);

  router.post(
    '/memory/batch',
    handle(async (req, res) => {
      const actor = (req as AuthedRequest).actor as Actor;
      const idempotencyKey = req.get('Idempotency-Key') || undefined;
      if (!req.is('application/x-ndjson') && !req.is('application/json')) {
        throw new BatchError(415, 'invalid_request', `Content-Type must be application/json or application/x-ndjson (got ${req.get('Content-Type') ?? 'none'})`);
      }
      // Held while the body is read and stored, not while the answer waits for the batch to finish.
      const onStored = slotFor(uploads, req, res);
      // A dry run validates the body exactly as a submit would, and stores and starts nothing.
      const dryRun = req.query.dry_run === 'true';
      let answer;
      if (req.is('application/x-ndjson')) {
        const query: Record<string, unknown> = Object.fromEntries(Object.entries(req.query).filter(([key]) => key !== 'wait' && !(dryRun && key === 'dry_run')));
        // The batch's metadata travels in the query string as JSON text; text that is not JSON is refused as not an object.
        if (typeof query.metadata === 'string') query.metadata = jsonOrText(query.metadata);
        if (dryRun) {
          const body = boundedBody(req, ndjsonBounds);
          res.status(200).json(await service.dryRunStream(actor, query, (onProblem) => ndjsonMemories(body, config, createHash('sha256'), onProblem)));
          return;
        }
        const options = parsedOrRefused(optionsSchema, query, 'batch options');
        const hash = createHash('sha256');
        const body = boundedBody(req, ndjsonBounds);
        answer = await service.submitStream(actor, { ...options, wait: wantsToWait(req) }, ndjsonMemories(body, config, hash), () => hash.digest('hex'), { idempotencyKey, onStored });
      } else {
        const body = await readJsonBody(req, jsonBounds);
        if (typeof body !== 'object' || body === null || Array.isArray(body)) {
          throw new BatchError(400, 'invalid_request', 'request body must be a JSON object with "memories"', [{ path: 'body', message: 'must be a JSON object' }]);
        }
        const fields = body as Record<string, unknown>;
        if (dryRun) {
          res.status(200).json(await service.dryRun(actor, fields));
          return;
        }
        const wait = wantsToWait(req, typeof fields.wait === 'boolean' ? fields.wait : undefined);
        answer = await service.submit(actor, { ...fields, ...(wait === undefined ? {} : { wait }) }, { idempotencyKey, onStored });
      }
      const status = httpStatusOf(answer.response);
      if (status === 202) res.setHeader('Location', `${base}/${answer.response.batch_id}`);
      if (!answer.created) res.setHeader('Idempotent-Replayed', 'true');
      res.status(status).json(answer.response);
    }),
  );

  router.get(
    '/memory/batch',
    handle(async (req, res) => {
      const actor = (req as AuthedRequest).actor as Actor;
      const { user_id: userId, ...query } = req.query as Record<string, string | undefined>;
      const listing = parsedOrRefused(batchListQuerySchema, withNumbers(query, ['offset', 'limit']), 'listing');
      res.json(listResponse(await service.list(actor, listing, userId), base));
    }),
  );

  router.get(
    '/memory/batch/:id',
    handle(async (req, res) => {
      const batch = await loadFor(req);
      res.json(statusResponse(service.visibleRecord((req as AuthedRequest).actor as Actor, batch), base));
    }),
  );

  router.get(
    '/memory/batch/:id/results',
    handle(async (req, res) => {
      const query = parsedOrRefused(resultsQuerySchema, withNumbers(req.query, ['after', 'limit']), 'results query');
      const batch = batchRecordOf(await service.ownBatch((req as AuthedRequest).actor as Actor, batchIdOf(req), 'read the per-item results of'));
      assertFilesKept(batch);
      if (!batch.resultsFileName) throw resultsNotReady(batch);
      res.status(200).type('application/x-ndjson');
      if (Object.keys(query).length === 0) {
        // All of them: each file's bytes streamed through gunzip in turn, never built in memory.
        for (const name of resultsFileNames(batch)) await pipeline(await service.storage.openFile(name), zlib.createGunzip(), res, { end: false });
        res.end();
        return;
      }
      // Filtered and ranged: one result at a time, and the download stops at the limit.
      await pipeline(
        Readable.from(
          (async function* () {
            for await (const result of service.resultLines(batch, query)) yield `${JSON.stringify(result)}\n`;
          })(),
        ),
        res,
      );
    }),
  );

  router.get(
    '/memory/batch/:id/events',
    handle(async (req, res) => {
      slotFor(eventStreams, req, res);
      const batch = await loadFor(req);
      res.status(200).set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
      res.flushHeaders();
      const gone = new AbortController();
      req.on('close', () => gone.abort());
      // A stream slot is not held for the hours a large batch runs: past REST_EVENT_STREAM_MAX_AGE the stream ends and
      // the client follows again (EventSource, and BatchMemoryClient, reconnect on their own).
      const ended = AbortSignal.any([gone.signal, AbortSignal.timeout(config.REST_EVENT_STREAM_MAX_AGE)]);
      let lastWrite = Date.now();
      for await (const status of service.statusChanges((req as AuthedRequest).actor as Actor, batch, ended)) {
        if (status) {
          res.write(`event: progress\ndata: ${JSON.stringify(status)}\n\n`);
          lastWrite = Date.now();
        } else if (Date.now() - lastWrite >= EVENTS_KEEPALIVE_MS) {
          // A comment line keeps proxies with idle timeouts from closing a quiet stream.
          res.write(': keepalive\n\n');
          lastWrite = Date.now();
        }
      }
      if (!gone.signal.aborted && ended.aborted) res.write(`: REST_EVENT_STREAM_MAX_AGE = ${config.REST_EVENT_STREAM_MAX_AGE} ms reached; follow again\n\n`);
      res.end();
    }),
  );

  router.post(
    '/memory/batch/:id/retry',
    handle(async (req, res) => {
      const actor = (req as AuthedRequest).actor as Actor;
      // A retry stores a new batch's parts: it takes an upload slot as a submit does.
      slotFor(uploads, req, res);
      const { response } = await service.retryFailed(actor, batchIdOf(req), req.get('Idempotency-Key') || undefined);
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

  router.delete(
    '/memory/batch/:id',
    handle(async (req, res) => {
      const actor = (req as AuthedRequest).actor as Actor;
      const status = await service.delete(actor, batchIdOf(req));
      // 202 while the memories are being removed; 200 once they are (a repeat of a finished deletion).
      res.status(status.status === 'deleted' ? 200 : 202).json(status);
    }),
  );

  async function loadFor(req: express.Request): Promise<Parse.Object> {
    const actor = (req as AuthedRequest).actor as Actor;
    return service.load(actor, batchIdOf(req));
  }

  router.use(jsonErrorHandler(log));

  return router;
}

function batchIdOf(req: express.Request): string {
  const id = String(req.params.id);
  if (!BATCH_ID_PATTERN.test(id)) throw new BatchError(404, 'not_found', `batch ${id} not found`);
  return id;
}
