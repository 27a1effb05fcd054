/**
 * Bounds on what one request may cost before any work is done for it: the bytes of its body after
 * decompression, how much a gzip body inflates, how long it takes to arrive, and how many uploads and
 * event streams run at once. A bound hit answers at once with 4xx and stops the work: the streams are
 * destroyed and nothing more is inflated or parsed (the answer drops the rest of the body unread, within
 * bounds, or closes the connection: see sendError).
 */
import type http from 'node:http';
import { type Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { Config } from '../config';
import { idOf } from '../schema/classes';
import type { Actor } from './auth';
import { BatchError } from './errors';

/** Below this many inflated bytes the ratio is never checked: a short, repetitive body may compress very well and still cost nothing. */
const INFLATE_RATIO_FLOOR_BYTES = 1024 * 1024;

export interface BodyBounds {
  /** Most bytes after decompression, and the setting that says so. */
  maxBytes: number;
  maxBytesSetting: string;
  /** What to do instead, said with a 413 for too many bytes. */
  tooLargeHint?: string;
  /**
   * Most decompressed bytes per compressed byte of a gzip body (REST_MAX_INFLATE_RATIO), checked once
   * more than `afterBytes` are inflated (and at least 1 MiB); none for a body whose byte bound is small enough.
   */
  maxInflateRatio?: { ratio: number; afterBytes: number };
  /** Longest time, in milliseconds, until the body has arrived (REST_BODY_TIMEOUT). */
  timeoutMs: number;
  /** Longest time, in milliseconds, the body may send nothing while the server waits for it (REST_BODY_IDLE_TIMEOUT). */
  idleTimeoutMs: number;
}

/** The bounds of a body of `maxBytes` (named by `maxBytesSetting`) under the configured timeouts. */
export function bodyBounds(config: Config, maxBytes: number, maxBytesSetting: string, extra: Pick<BodyBounds, 'tooLargeHint' | 'maxInflateRatio'> = {}): BodyBounds {
  return { maxBytes, maxBytesSetting, ...extra, timeoutMs: config.REST_BODY_TIMEOUT, idleTimeoutMs: config.REST_BODY_IDLE_TIMEOUT };
}

function tooLarge(bounds: BodyBounds): BatchError {
  return new BatchError(413, 'too_large', `request body exceeds ${bounds.maxBytesSetting} = ${bounds.maxBytes} bytes${bounds.tooLargeHint ? `; ${bounds.tooLargeHint}` : ''}`, [
    { path: 'body', message: 'is too large', limit: bounds.maxBytes },
  ]);
}

/**
 * The request body, decompressed when Content-Encoding says gzip, as a stream that fails with a
 * BatchError at the first bound it passes (413 bytes or inflate ratio, 408 deadline); a client that
 * goes away fails it too. Refuses an unsupported encoding (415) or a declared length over the bound
 * (413) before reading anything.
 */
export function boundedBody(req: http.IncomingMessage, bounds: BodyBounds): Readable {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip') throw new BatchError(415, 'invalid_request', `Content-Encoding ${encoding} is not supported (use gzip or none)`);
  if (encoding === 'identity' && Number(req.headers['content-length']) > bounds.maxBytes) throw tooLarge(bounds);
  const inflater = encoding === 'gzip' ? zlib.createGunzip() : undefined;
  let inflated = 0;
  const ratio = bounds.maxInflateRatio;
  const ratioFrom = Math.max(INFLATE_RATIO_FLOOR_BYTES, ratio?.afterBytes ?? 0);
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      inflated += chunk.length;
      if (inflated > bounds.maxBytes) return done(tooLarge(bounds));
      // bytesWritten: the compressed bytes the inflater has taken in so far.
      if (inflater && ratio && inflated > ratioFrom && inflated > ratio.ratio * inflater.bytesWritten) {
        return done(
          new BatchError(413, 'too_large', `request body inflates more than REST_MAX_INFLATE_RATIO = ${ratio.ratio} times its compressed size`, [
            { path: 'body', message: 'inflates too much', limit: ratio.ratio },
          ]),
        );
      }
      done(null, chunk);
    },
  });
  let stopped = false;
  const stop = () => {
    stopped = true;
    clearTimeout(deadline);
    clearTimeout(idle);
    req.unpipe();
    req.pause();
    inflater?.destroy();
  };
  const fail = (error: Error) => {
    stop();
    if (!meter.destroyed) meter.destroy(error);
  };
  const deadline = setTimeout(
    () =>
      fail(new BatchError(408, 'timeout', `request body did not arrive within REST_BODY_TIMEOUT = ${bounds.timeoutMs} ms`, [{ path: 'body', message: 'arrived too slowly', limit: bounds.timeoutMs }])),
    bounds.timeoutMs,
  );
  // A body that stalls holds an upload slot for nothing: past REST_BODY_IDLE_TIMEOUT without a byte it is cut, unless
  // the server is what it waits on (the request paused while what it sent is stored).
  const stalled = () =>
    new BatchError(408, 'timeout', `request body stalled: nothing arrived for REST_BODY_IDLE_TIMEOUT = ${bounds.idleTimeoutMs} ms`, [
      { path: 'body', message: 'stalled', limit: bounds.idleTimeoutMs },
    ]);
  let idle: NodeJS.Timeout | undefined;
  const armIdle = () => {
    clearTimeout(idle);
    if (stopped || req.complete) return;
    idle = setTimeout(() => (req.isPaused() ? armIdle() : fail(stalled())), bounds.idleTimeoutMs);
  };
  armIdle();
  req.on('data', armIdle);
  req.once('end', () => {
    stopped = true;
    clearTimeout(deadline);
    clearTimeout(idle);
  });
  // The client went away: its answer goes nowhere, but what the upload stored must still be removed.
  const clientGone = () => new BatchError(400, 'invalid_request', 'the client closed the connection before the body ended');
  req.once('close', () => req.complete || fail(clientGone()));
  // A connection reset reaches the request as an `aborted` error before its close: the same cause, named as such.
  req.once('error', (error: NodeJS.ErrnoException) => fail(error.code === 'ECONNRESET' ? clientGone() : error));
  meter.once('error', fail);
  // The reader stopped (a bad line, or the end): nothing more is read.
  meter.once('close', stop);
  if (inflater) {
    inflater.once('error', fail);
    req.pipe(inflater).pipe(meter);
  } else {
    req.pipe(meter);
  }
  return meter;
}

/** A JSON body read within the bounds: 400 if it is not valid UTF-8 JSON. */
export async function readJsonBody(req: http.IncomingMessage, bounds: BodyBounds): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of boundedBody(req, bounds)) chunks.push(chunk as Buffer);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new BatchError(400, 'invalid_request', 'request body is not valid UTF-8', [{ path: 'body', message: 'is not valid UTF-8' }]);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BatchError(400, 'invalid_request', `request body is not valid JSON: ${(error as Error).message}`, [{ path: 'body', message: 'is not valid JSON' }]);
  }
}

/**
 * Slots of some work (uploads, event streams) per user and in total, in this process. take() answers
 * a release function, or throws 429 naming the setting that is full; release is idempotent, so it can
 * be called on every way a request ends.
 */
export class ConcurrencyBound {
  private readonly perUser = new Map<string, number>();
  private total = 0;

  constructor(
    private readonly what: string,
    private readonly limits: { total: number; totalSetting: string; perUser: number; perUserSetting: string },
    private readonly retryAfterSeconds: number,
  ) {}

  take(user: string): () => void {
    const mine = this.perUser.get(user) ?? 0;
    if (mine >= this.limits.perUser) throw this.busy(`you already have ${mine} ${this.what} open, the most one user may (${this.limits.perUserSetting} = ${this.limits.perUser})`);
    if (this.total >= this.limits.total) throw this.busy(`the server already has ${this.total} ${this.what} open, the most it allows (${this.limits.totalSetting} = ${this.limits.total})`);
    this.perUser.set(user, mine + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const left = (this.perUser.get(user) ?? 1) - 1;
      if (left > 0) this.perUser.set(user, left);
      else this.perUser.delete(user);
    };
  }

  private busy(message: string): BatchError {
    return new BatchError(429, 'rate_limited', `too many ${this.what} at once: ${message}; retry after the Retry-After seconds`, [], this.retryAfterSeconds);
  }
}

/** Retry-After of a 429 for a full upload or event-stream bound: slots free up as batches are stored and streams end. */
const BUSY_RETRY_AFTER_SECONDS = 5;

/** The slots every door shares: uploads (held while a batch is read and stored) and event streams (held while a batch is followed). */
export interface ConcurrencySlots {
  uploads: ConcurrencyBound;
  eventStreams: ConcurrencyBound;
}

export function concurrencySlots(config: Config): ConcurrencySlots {
  return {
    uploads: new ConcurrencyBound(
      'uploads',
      { total: config.REST_MAX_UPLOADS, totalSetting: 'REST_MAX_UPLOADS', perUser: config.REST_MAX_UPLOADS_PER_USER, perUserSetting: 'REST_MAX_UPLOADS_PER_USER' },
      BUSY_RETRY_AFTER_SECONDS,
    ),
    eventStreams: new ConcurrencyBound(
      'event streams',
      { total: config.REST_MAX_EVENT_STREAMS, totalSetting: 'REST_MAX_EVENT_STREAMS', perUser: config.REST_MAX_EVENT_STREAMS_PER_USER, perUserSetting: 'REST_MAX_EVENT_STREAMS_PER_USER' },
      BUSY_RETRY_AFTER_SECONDS,
    ),
  };
}

/** Whose slot a request takes: its user's, or the master key's one pool. */
export function slotHolder(actor: Actor): string {
  return actor.user ? `user:${idOf(actor.user)}` : 'master';
}
