/**
 * The MCP door over Streamable HTTP, at /mcp on the Parse Server port: stateless, one MCP server per
 * request, authenticated per request (Authorization: Bearer <session token>, counted toward the user's
 * USER_RATE_LIMIT), the body bounded as the REST route's JSON body is. The tools reach the BatchService
 * in this process as the session's user, with the upload and event-stream slots the REST route uses.
 */
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import express from 'express';
import type { Config } from '../config';
import type { Logger } from '../config/log';
import { type BatchAccess, batchMcpServer } from '../mcp/server';
import { listResponse, statusResponse } from '../schema/answers';
import { batchRecordOf } from '../schema/records';
import type { Actor, AuthedRequest, RouteAuthentication } from './auth';
import type { BatchService } from './batchService';
import { jsonErrorHandler } from './httpErrors';
import { bodyBounds, type ConcurrencySlots, readJsonBody, slotHolder } from './inputBounds';

export const MCP_PATH = '/mcp';

/** The BatchService as `actor` (a session's user) may use it. */
function inProcessAccess(service: BatchService, config: Config, actor: Actor, slots: ConcurrencySlots): BatchAccess {
  const load = (batchId: string) => service.load(actor, batchId);
  return {
    async submit(settings, memories, idempotencyKey) {
      // Held while the batch is validated and stored, as a REST upload's slot is.
      const release = slots.uploads.take(slotHolder(actor));
      try {
        const { response } = await service.submit(actor, { ...settings, memories, wait: false }, { idempotencyKey, onStored: release });
        return response;
      } finally {
        release();
      }
    },
    check: (settings, memories) => service.dryRun(actor, { ...settings, memories }),
    async status(batchId) {
      return statusResponse(service.visibleRecord(actor, await load(batchId)));
    },
    async list(query) {
      return listResponse(await service.list(actor, query));
    },
    async *results(batchId) {
      // Streamed: a page of failures stops reading where it ends.
      yield* service.resultLines(batchRecordOf(await service.ownBatch(actor, batchId, 'read the per-item results of')), {});
    },
    cancel: (batchId) => service.cancel(actor, batchId),
    delete: (batchId) => service.delete(actor, batchId),
    async retryFailed(batchId) {
      // A retry stores a new batch's parts: it takes an upload slot as an import does.
      const release = slots.uploads.take(slotHolder(actor));
      try {
        return (await service.retryFailed(actor, batchId)).response;
      } finally {
        release();
      }
    },
    async follow(batchId, onStatus, signal) {
      const batch = await load(batchId);
      // An event stream's slot, and no longer than a waiting REST request (BATCH_WAIT_TIMEOUT): then the status as it is.
      const release = slots.eventStreams.take(slotHolder(actor));
      let last = statusResponse(service.visibleRecord(actor, batch));
      try {
        for await (const status of service.statusChanges(actor, batch, AbortSignal.any([signal, AbortSignal.timeout(config.BATCH_WAIT_TIMEOUT)]))) {
          if (!status) continue;
          last = status;
          onStatus(status);
        }
      } finally {
        release();
      }
      return last;
    },
  };
}

export function mcpRoute(service: BatchService, config: Config, log: Logger, authentication: RouteAuthentication, slots: ConcurrencySlots): express.Router {
  const router = express.Router();
  const bounds = bodyBounds(config, config.REST_MAX_JSON_BYTES, 'REST_MAX_JSON_BYTES');

  router.use(authentication.mcp);

  router.post('/', (req, res, next) => {
    (async () => {
      const body = await readJsonBody(req, bounds);
      const actor = (req as AuthedRequest).actor as Actor;
      // A JSON-RPC array is as many calls as it has members, refused whole past the user's limit.
      if (Array.isArray(body)) await authentication.countFurtherCalls(actor, body.length);
      const server = batchMcpServer(inProcessAccess(service, config, actor, slots), { maxBatchSize: config.MAX_BATCH_SIZE, log });
      // Stateless: no session id; every request carries its own credentials and gets its own server.
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.once('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    })().catch(next);
  });

  // A stateless server has no stream to resume and no session to end.
  router.all('/', (_req, res) => {
    res.status(405).setHeader('Allow', 'POST');
    res.json({ jsonrpc: '2.0', error: { code: -32000, message: 'method not allowed: this MCP server is stateless; send each request as a POST' }, id: null });
  });

  router.use(jsonErrorHandler(log));
  return router;
}
