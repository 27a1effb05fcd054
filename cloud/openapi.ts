/** OpenAPI 3.1 document of the REST route, generated from the zod schemas that validate it. */
import { z } from 'zod';
import {
  BATCH_STATUSES,
  MAX_PAGE_SIZE,
  STREAM_PROCESSING_MODES,
  batchListResponseSchema,
  batchMemoryResponseSchema,
  batchOptionsFields,
  batchStatusResponseSchema,
  dryRunResponseSchema,
  errorResponseSchema,
  memoryItemSchema,
  memoryProcessingResultSchema,
} from '../schema/memory';

const schema = (type: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(type, { target: 'draft-2020-12', io, unrepresentable: 'any' });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonContent = (name: string) => ({ 'application/json': { schema: ref(name) } });
/** Every error answer a route may give; OpenAPI requires each response's description, so a code without one does not compile. */
const ERROR_DESCRIPTIONS = {
  400: 'invalid input; details name the item index, field and limit (with process=while_uploading, batch_id names the batch that holds the memories before it)',
  401: 'no valid session token or master key',
  403: 'an anonymous user submitting, or an organization member acting on a batch that is not theirs (members read its status only)',
  404: 'no such batch, or not yours',
  408: 'the body did not arrive within REST_BODY_TIMEOUT, or stalled for REST_BODY_IDLE_TIMEOUT',
  409: 'idempotency key reused with a different body or on an upload that did not end (batch_id names it), or results not ready',
  410: "the batch's stored files have expired",
  413: 'over a size or count limit, named in the message',
  415: 'unsupported Content-Type or Content-Encoding',
  429: 'rate limited (USER_RATE_LIMIT, or AUTH_FAILURE_LIMIT for the address), or too many uploads or event streams at once; see Retry-After',
} as const;

const errors = (...codes: (keyof typeof ERROR_DESCRIPTIONS)[]) =>
  Object.fromEntries(codes.map((code) => [String(code), { description: ERROR_DESCRIPTIONS[code], content: jsonContent('ErrorResponse') }]));

const idParameter = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

let document: Record<string, unknown> | undefined;

export function openApiDocument(): Record<string, unknown> {
  document ??= {
    openapi: '3.1.0',
    info: { title: 'Batch memory ingestion', version: '1.0.0', description: 'Durable, large-batch memory ingestion on Parse Server, driven by Temporal.' },
    components: {
      securitySchemes: {
        sessionToken: { type: 'apiKey', in: 'header', name: 'X-Parse-Session-Token' },
        bearer: { type: 'http', scheme: 'bearer', description: 'a Parse session token' },
        masterKey: { type: 'apiKey', in: 'header', name: 'X-Parse-Master-Key', description: 'acts for the user named by user_id' },
      },
      schemas: {
        MemoryItem: schema(memoryItemSchema, 'input'),
        BatchRequest: schema(batchOptionsFields.extend({ memories: z.array(memoryItemSchema).min(1) }), 'input'),
        BatchOptions: schema(batchOptionsFields, 'input'),
        BatchMemoryResponse: schema(batchMemoryResponseSchema, 'output'),
        BatchStatusResponse: schema(batchStatusResponseSchema, 'output'),
        BatchListResponse: schema(batchListResponseSchema, 'output'),
        MemoryProcessingResult: schema(memoryProcessingResultSchema, 'output'),
        ErrorResponse: schema(errorResponseSchema, 'output'),
        DryRunResponse: schema(dryRunResponseSchema, 'output'),
      },
    },
    security: [{ sessionToken: [] }, { bearer: [] }, { masterKey: [] }],
    paths: {
      '/api/v1/memory/batch': {
        post: {
          summary: 'Submit a batch of memories',
          parameters: [
            { name: 'Idempotency-Key', in: 'header', schema: { type: 'string' }, description: 'same key and body: the same batch; same key, other body: 409' },
            { name: 'wait', in: 'query', schema: { type: 'boolean' }, description: 'false answers at once with 202 (also Prefer: respond-async)' },
            { name: 'namespace', in: 'query', schema: { type: 'string' }, description: 'NDJSON uploads take their options from the query' },
            { name: 'workspace_id', in: 'query', schema: { type: 'string' } },
            {
              name: 'dry_run',
              in: 'query',
              schema: { type: 'boolean' },
              description: 'true: validate the body exactly as a submit would, store and start nothing, answer 200 with a DryRunResponse',
            },
            {
              name: 'process',
              in: 'query',
              schema: { type: 'string', enum: [...STREAM_PROCESSING_MODES], default: 'after_upload' },
              description:
                'NDJSON only. after_upload (default): processed once the whole body has arrived and every line is valid, all or nothing. ' +
                'while_uploading: the batch is created `receiving` with its first stored part and each part is processed as it is stored; ' +
                'a bad line or a broken upload after that answers the error with its batch_id, and the batch ends failed holding exactly the memories before it',
            },
          ],
          requestBody: {
            required: true,
            description: 'application/json: the batch, memories and options; application/x-ndjson: one MemoryItem per line (Content-Encoding: gzip accepted), the options in the query string',
            content: {
              'application/json': { schema: ref('BatchRequest') },
              'application/x-ndjson': { schema: ref('MemoryItem') },
            },
          },
          responses: {
            '200': {
              description: 'completed, every memory stored; with dry_run=true, what a submit would have found (DryRunResponse)',
              content: { 'application/json': { schema: { oneOf: [ref('BatchMemoryResponse'), ref('DryRunResponse')] } } },
            },
            '202': { description: 'accepted and still running; poll the Location', content: jsonContent('BatchMemoryResponse') },
            '207': { description: 'finished with item failures, or failed or cancelled', content: jsonContent('BatchMemoryResponse') },
            ...errors(400, 401, 403, 408, 409, 413, 415, 429),
          },
        },
        get: {
          summary: "The caller's own batches, newest first, filtered, a page at a time",
          parameters: [
            { name: 'status', in: 'query', schema: { type: 'string', enum: [...BATCH_STATUSES] }, description: 'only batches in this status' },
            { name: 'namespace', in: 'query', schema: { type: 'string' }, description: 'only batches of this namespace' },
            { name: 'created_after', in: 'query', schema: { type: 'string', format: 'date-time' }, description: 'only batches created after this time' },
            { name: 'created_before', in: 'query', schema: { type: 'string', format: 'date-time' }, description: 'only batches created before this time' },
            { name: 'after', in: 'query', schema: { type: 'string' }, description: 'the next_cursor of the page before (stable while batches are created)' },
            { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'batches to skip (default 0; not with after)' },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE }, description: 'batches per page (default 20)' },
            { name: 'user_id', in: 'query', schema: { type: 'string' }, description: 'with the master key: whose batches' },
          ],
          responses: { '200': { description: 'a page; next_cursor (and next_offset, when paged by offset) when more follow', content: jsonContent('BatchListResponse') }, ...errors(400, 401, 429) },
        },
      },
      '/api/v1/memory/batch/{id}': {
        get: {
          summary: 'Status, counts and timestamps of a batch',
          parameters: [idParameter],
          responses: { '200': { description: 'the batch', content: jsonContent('BatchStatusResponse') }, ...errors(401, 404, 429) },
        },
        delete: {
          summary:
            'Undo an import (owner or master key): removes the memories the batch created and its stored files through a Temporal workflow; a running batch is cancelled first. It ends `deleted` with deleted_memories. Idempotent',
          parameters: [idParameter],
          responses: {
            '202': { description: 'the deletion is under way (status deleting)', content: jsonContent('BatchStatusResponse') },
            '200': { description: 'the batch was already deleted', content: jsonContent('BatchStatusResponse') },
            ...errors(401, 403, 404, 429),
          },
        },
      },
      '/api/v1/memory/batch/{id}/results': {
        get: {
          summary: 'Per-item results, streamed as JSON Lines, in batch order; filtered and ranged on request (status=failed: the errors only)',
          parameters: [
            idParameter,
            { name: 'status', in: 'query', schema: { type: 'string', enum: ['succeeded', 'failed'] }, description: 'only the stored items, or only the failed ones' },
            { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'only items whose index is greater' },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1 }, description: 'at most this many items' },
          ],
          responses: {
            '200': { description: 'one MemoryProcessingResult per line', content: { 'application/x-ndjson': { schema: ref('MemoryProcessingResult') } } },
            ...errors(400, 401, 403, 404, 409, 410, 429),
          },
        },
      },
      '/api/v1/memory/batch/{id}/events': {
        get: {
          summary: 'Server-sent events: a `progress` event with the batch status at each change, until a terminal status',
          parameters: [idParameter],
          responses: {
            '200': { description: 'event stream; each data line is a BatchStatusResponse', content: { 'text/event-stream': { schema: ref('BatchStatusResponse') } } },
            ...errors(401, 404, 429),
          },
        },
      },
      '/api/v1/memory/batch/{id}/retry': {
        post: {
          summary: 'A new batch of the items a finished batch did not store (failed, or never reached); owner or master key. A batch has one retry: a repeat answers it',
          parameters: [idParameter, { name: 'Idempotency-Key', in: 'header', schema: { type: 'string' }, description: 'a key used before for a different request: 409' }],
          responses: {
            '202': { description: 'the new batch, accepted; poll the Location', content: jsonContent('BatchMemoryResponse') },
            ...errors(401, 403, 404, 409, 410, 429),
          },
        },
      },
      '/api/v1/memory/batch/{id}/cancel': {
        post: {
          summary: 'Cancel a batch; memories written so far stay',
          parameters: [idParameter],
          responses: { '200': { description: 'the batch after cancellation', content: jsonContent('BatchMemoryResponse') }, ...errors(401, 403, 404, 429) },
        },
      },
    },
  };
  return document;
}
