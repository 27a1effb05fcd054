/**
 * The product's one error shape, `{ error: { code, message, details } }`, for every route of the app
 * outside Parse Server's own (which answer in Parse's shape): never Express's HTML page, a stack trace
 * or a server path.
 */
import type express from 'express';
import type { Logger } from '../config/log';
import { BatchError } from './errors';

/** Answers a BatchError; a request whose body was not read to the end closes its connection after the answer, so the rest is never read. */
export function sendError(res: express.Response, error: BatchError): void {
  if (error.status === 429) res.setHeader('Retry-After', String(error.retryAfterSeconds ?? 60));
  if (!res.req.complete) res.setHeader('Connection', 'close');
  res.status(error.status).json({ error: { code: error.code, message: error.message, details: error.details } });
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
