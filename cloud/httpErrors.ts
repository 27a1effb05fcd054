/**
 * The product's one error shape, `{ error: { code, message, details } }`, for every route of the app
 * outside Parse Server's own (which answer in Parse's shape): never Express's HTML page, a stack trace
 * or a server path.
 */
import type http from 'node:http';
import type express from 'express';
import type { Logger } from '../config/log';
import { BatchError } from './errors';

/**
 * The rest of a refused request's body is read and dropped, unparsed, up to this many bytes and this long,
 * so that a client still sending it receives the answer instead of a reset; past either bound the
 * connection is cut.
 */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
const DRAIN_MAX_MS = 10_000;

function discardRestOfBody(req: http.IncomingMessage): void {
  req.unpipe();
  let discarded = 0;
  const cut = () => req.socket.destroy();
  const deadline = setTimeout(cut, DRAIN_MAX_MS);
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > DRAIN_MAX_BYTES) {
      clearTimeout(deadline);
      cut();
    }
  });
  req.once('close', () => clearTimeout(deadline));
  req.once('end', () => clearTimeout(deadline));
  req.resume();
}

/**
 * Answers a BatchError. A body not read to its end is drained within bounds (see DRAIN_MAX_BYTES), except
 * one that arrives too slowly (408): its connection closes after the answer.
 */
export function sendError(res: express.Response, error: BatchError): void {
  if (error.status === 429) res.setHeader('Retry-After', String(error.retryAfterSeconds ?? 60));
  if (!res.req.complete) {
    if (error.status === 408) res.setHeader('Connection', 'close');
    else discardRestOfBody(res.req);
  }
  res.status(error.status).json({ error: { code: error.code, message: error.message, details: error.details, ...(error.batchId ? { batch_id: error.batchId } : {}) } });
}

/** Errors of Express's body parsers and of zlib, as the client's mistake they are. */
function clientError(error: unknown): BatchError | undefined {
  if (error instanceof BatchError) return error;
  const { type, limit, code } = error as { type?: string; limit?: number; code?: string };
  if (type === 'entity.too.large') return new BatchError(413, 'too_large', `request body exceeds ${limit} bytes`, [{ path: 'body', message: 'is too large', ...(limit ? { limit } : {}) }]);
  if (type === 'entity.parse.failed' || type === 'encoding.unsupported' || type === 'charset.unsupported' || type === 'request.size.invalid') {
    return new BatchError(400, 'invalid_request', 'request body is not valid JSON', [{ path: 'body', message: 'is not valid JSON' }]);
  }
  if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR') {
    return new BatchError(400, 'invalid_request', `request body is not valid gzip: ${(error as Error).message}`, [{ path: 'body', message: 'is not valid gzip' }]);
  }
  return undefined;
}

/** The last error handler of a router or the app. An answer already under way is cut off (a stream must not look complete). */
export function jsonErrorHandler(log: Logger): express.ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const known = clientError(error);
    if (res.headersSent) {
      // Parse Server's handlers answer and then pass the error on: that answer stands.
      if (!res.writableEnded) {
        log.error('answer failed while sent', { path: req.path, error: (error as Error)?.message, stack: (error as Error)?.stack });
        res.destroy();
      }
      return;
    }
    if (known) return sendError(res, known);
    log.error('request failed', { method: req.method, path: req.path, error: (error as Error)?.message, stack: (error as Error)?.stack });
    sendError(res, new BatchError(500, 'internal', 'internal error'));
  };
}

/** What no route answered: JSON, not Express's HTML page. */
export const notFound: express.RequestHandler = (req, res) => {
  sendError(res, new BatchError(404, 'not_found', `no route for ${req.method} here`));
};
