/**
 * The Model Context Protocol door: the tools and resources an agent sees, over one `BatchAccess`.
 * Streamable HTTP at /mcp reaches the BatchService in the server's process (cloud/mcpRoute.ts); stdio
 * (`memory-batch mcp`) reaches it through the REST route (client/mcp.ts). Either way the product's own
 * validation, limits and access rules decide, and its error messages are what the agent reads.
 */
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { EmptyResultSchema, ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { BatchApiError, MemoriesDocumentError } from '../client';
import { BatchError } from '../cloud/errors';
import type { Logger } from '../config/log';
import {
  BATCH_ID_PATTERN,
  type BatchListResponse,
  type BatchMemoryResponse,
  type BatchStatusResponse,
  type MemoryItem,
  type MemoryProcessingResult,
  type BatchListQuery,
  TERMINAL_STATUSES,
  batchListQuerySchema,
  batchListResponseSchema,
  batchOptionsFields,
  batchStatusResponseSchema,
  type DryRunResponse,
  dryRunResponseSchema,
  memoryItemSchema,
  memoryProcessingResultSchema,
  pageFields,
} from '../schema/memory';

/** The settings of an import an agent may give. */
export type ImportSettings = { namespace?: string; workspace_id?: string; metadata?: Record<string, unknown> };

/** What the tools do, whichever way the door reaches the product. Every method acts as the connected user. */
export interface BatchAccess {
  /** Inline memories as one batch; answers once it is stored, without waiting for it. */
  submit(settings: ImportSettings, memories: MemoryItem[], idempotencyKey?: string): Promise<BatchMemoryResponse>;
  /** A JSON Lines or JSON file of this machine, streamed as NDJSON; only a door on the agent's machine (stdio) has one. */
  submitFile?(path: string, format: 'jsonl' | 'json', settings: ImportSettings, idempotencyKey?: string): Promise<BatchMemoryResponse>;
  /** The dry run of `submit`: validated exactly as a submit would, nothing stored or started. */
  check(settings: ImportSettings, memories: MemoryItem[]): Promise<DryRunResponse>;
  /** The dry run of `submitFile`. */
  checkFile?(path: string, format: 'jsonl' | 'json', settings: ImportSettings): Promise<DryRunResponse>;
  status(batchId: string): Promise<BatchStatusResponse>;
  list(query: BatchListQuery): Promise<BatchListResponse>;
  /** Per-item results of a finished batch, in batch order. */
  results(batchId: string): AsyncIterable<MemoryProcessingResult>;
  cancel(batchId: string): Promise<BatchMemoryResponse>;
  /** Undoes an import: its memories and stored files are removed; answers as the deletion begins. */
  delete(batchId: string): Promise<BatchStatusResponse>;
  retryFailed(batchId: string): Promise<BatchMemoryResponse>;
  /** Follows a batch until it ends (or the door's wait bound passes), calling `onStatus` at each change; answers the last status. */
  follow(batchId: string, onStatus: (status: BatchStatusResponse) => void, signal: AbortSignal): Promise<BatchStatusResponse>;
}

/** A refusal the door itself makes, shown to the agent as it is. */
export class ToolRefusal extends Error {}

/**
 * Per-item results one read of `batch://{id}/results` answers at most: one message of a large batch's
 * results (6 MB at 100,000 items) would sit whole in the server's memory and be of no use to an agent.
 */
export const RESOURCE_MAX_RESULTS = 1000;
/** What one MCP read answers at most, in bytes of JSON: a page a model can read, whatever the items' errors hold. */
export const MCP_READ_MAX_BYTES = 64 * 1024;
const batchId = z.string({ error: 'must be a string' }).regex(BATCH_ID_PATTERN, { error: 'is not a batch id' }).describe('id of a batch, as import_memories answered it');

/** A batch's id, status and counts: what import, cancel and retry answer. */
const batchSummarySchema = batchStatusResponseSchema.pick({ batch_id: true, status: true, total: true, processed: true, failed: true, error: true });
type BatchSummary = z.infer<typeof batchSummarySchema>;

const failuresSchema = z.strictObject({
  batch_id: z.string(),
  failures: z.array(memoryProcessingResultSchema),
  next_offset: z.number().int().nonnegative().optional(),
});

function importInputSchema(maxBatchSize: number | undefined) {
  const memories = z.array(memoryItemSchema, { error: 'must be an array of memories' }).min(1, { error: 'must contain at least 1 memory' });
  return batchOptionsFields.pick({ namespace: true, workspace_id: true, idempotency_key: true, wait: true, metadata: true }).extend({
    memories: (maxBatchSize ? memories.max(maxBatchSize, { error: `must contain at most MAX_BATCH_SIZE = ${maxBatchSize} memories` }) : memories)
      .optional()
      .describe(`the memories, inline${maxBatchSize ? ` (at most MAX_BATCH_SIZE = ${maxBatchSize})` : ''}; or give path instead`),
    path: z
      .string({ error: 'must be a string' })
      .min(1, { error: 'must not be empty' })
      .optional()
      .describe(
        'stdio only (memory-batch mcp): a JSON Lines file, or a JSON file (an array, or {"memories": [...]}), on the machine the MCP server runs on; streamed as NDJSON, any size the REST route takes',
      ),
    format: z.enum(['jsonl', 'json'], { error: 'must be jsonl or json' }).optional().describe('format of the file at path (default: json for *.json, jsonl otherwise)'),
  });
}

/** The settings an agent gave with its memories. */
function importSettingsOf(input: ImportSettings): ImportSettings {
  return {
    ...(input.namespace ? { namespace: input.namespace } : {}),
    ...(input.workspace_id ? { workspace_id: input.workspace_id } : {}),
    ...(input.metadata ? { metadata: input.metadata } : {}),
  };
}

function summaryOf(batch: BatchMemoryResponse | BatchStatusResponse): BatchSummary {
  const error = 'results' in batch ? batch.errors?.find((e) => !e.startsWith('memories[')) : batch.error;
  return { batch_id: batch.batch_id, status: batch.status, total: batch.total, processed: batch.processed, failed: batch.failed, ...(error ? { error } : {}) };
}

function describe(batch: BatchSummary): string {
  return `batch ${batch.batch_id}: ${batch.status}, ${batch.processed} of ${batch.total} stored, ${batch.failed} failed${batch.error ? ` (${batch.error})` : ''}`;
}

/** The message an agent may read: the product's own (index, field, limit), never a stack trace or an internal detail. */
function shownMessage(error: unknown, log: Logger): string {
  if (error instanceof BatchError || error instanceof BatchApiError) return error.message;
  if (error instanceof MemoriesDocumentError) return `the file ${error.message}`;
  if (error instanceof ToolRefusal) return error.message;
  log.error('MCP call failed', { error: (error as Error)?.message, stack: (error as Error)?.stack });
  return 'internal error';
}

/** A tool's answer: structured content with a short text, or the refusal as a tool error. */
async function answer<T extends Record<string, unknown>>(log: Logger, work: () => Promise<T>, text: (result: T) => string) {
  try {
    const result = await work();
    return { structuredContent: result, content: [{ type: 'text' as const, text: text(result) }] };
  } catch (error) {
    return { isError: true, content: [{ type: 'text' as const, text: shownMessage(error, log) }] };
  }
}

/** A resource read that failed: the product's message as a JSON-RPC error (not found for another user's batch). */
function resourceError(error: unknown, log: Logger): McpError {
  const status = error instanceof BatchError || error instanceof BatchApiError ? error.status : undefined;
  // -32002: the MCP specification's code for a resource that is not there.
  return new McpError(status === 404 ? -32002 : ErrorCode.InvalidRequest, shownMessage(error, log));
}

export interface McpServerOptions {
  /** MAX_BATCH_SIZE, declared in the tool's schema when the door knows it (the server checks it in any case). */
  maxBatchSize?: number;
  /**
   * Before answering a call that sent progress, pings the agent: the SDK's client handles a notification
   * after a response it read in the same chunk, and would drop the last progress notification. Only on a
   * connection that carries the ping's answer back to this server (stdio, not stateless HTTP).
   */
  confirmProgress?: boolean;
  /** Set when the door acts with the master key, for this user: every description says so. */
  masterKeyFor?: string;
  log: Logger;
}

/** An MCP server (one per stdio process, one per HTTP request) whose tools and resources act through `access`. */
export function batchMcpServer(access: BatchAccess, options: McpServerOptions): McpServer {
  const { log } = options;
  const server = new McpServer({ name: 'memory-batch', version: '1.0.0' });
  // "Your own" is not true of the master key: an agent, and whoever reads its tool list, is told what it holds.
  const scoped = (description: string) =>
    options.masterKeyFor ? `${description} MASTER-KEY MODE: imports belong to user ${options.masterKeyFor}, and any user's batch can be read, cancelled, retried and deleted by its id.` : description;

  server.registerTool(
    'import_memories',
    {
      title: 'Import memories',
      description: scoped(
        'Stores memories as one durable batch for the connected user and answers its id, status and counts. With wait, answers once the batch has ended, sending progress (processed / total) when the call carries a progress token.',
      ),
      inputSchema: importInputSchema(options.maxBatchSize),
      outputSchema: batchSummarySchema,
    },
    (input, extra) =>
      answer(
        log,
        async () => {
          const settings = importSettingsOf(input);
          if ((input.memories === undefined) === (input.path === undefined)) throw new ToolRefusal('give either memories (inline) or path (a file, over stdio), not both or neither');
          let accepted: BatchMemoryResponse;
          if (input.path !== undefined) {
            if (!access.submitFile) throw new ToolRefusal('path: files are read only by the stdio server (memory-batch mcp) on their own machine; over HTTP send the memories inline');
            const format = input.format ?? (input.path.toLowerCase().endsWith('.json') ? 'json' : 'jsonl');
            accepted = await access.submitFile(input.path, format, settings, input.idempotency_key);
          } else {
            accepted = await access.submit(settings, input.memories as MemoryItem[], input.idempotency_key);
          }
          if (!input.wait || TERMINAL_STATUSES.includes(accepted.status)) return summaryOf(accepted);
          const token = extra._meta?.progressToken;
          let sent = -1;
          // Notifications go out in order, and all before the answer: a client stops listening for progress once answered.
          let notified = Promise.resolve();
          const final = await access.follow(
            accepted.batch_id,
            (status) => {
              const done = status.processed + status.failed;
              // Progress must rise from one notification to the next.
              if (token === undefined || done <= sent) return;
              sent = done;
              const progress = { progressToken: token, progress: done, total: status.total, message: status.status };
              notified = notified.then(() => extra.sendNotification({ method: 'notifications/progress', params: progress })).catch(() => undefined);
            },
            extra.signal,
          );
          await notified;
          if (options.confirmProgress && token !== undefined) await extra.sendRequest({ method: 'ping' }, EmptyResultSchema).catch(() => undefined);
          return summaryOf(final);
        },
        describe,
      ),
  );

  server.registerTool(
    'check_memories',
    {
      title: 'Check memories without importing them',
      description: scoped(
        'The dry run of import_memories: validates the memories (inline, or a file over stdio) exactly as an import would and answers the total and every problem (index, field, message; the first 100 named, all counted). Stores nothing, starts nothing.',
      ),
      // Memories of any shape: checking them is the tool's answer, not a refusal of its input.
      inputSchema: importInputSchema(options.maxBatchSize)
        .omit({ idempotency_key: true, wait: true })
        .extend({ memories: z.array(z.unknown()).optional().describe('the memories to check, inline; or give path instead') }),
      outputSchema: dryRunResponseSchema,
      annotations: { readOnlyHint: true },
    },
    (input) =>
      answer(
        log,
        async () => {
          const settings = importSettingsOf(input);
          if ((input.memories === undefined) === (input.path === undefined)) throw new ToolRefusal('give either memories (inline) or path (a file, over stdio), not both or neither');
          if (input.path === undefined) return access.check(settings, input.memories as MemoryItem[]);
          if (!access.checkFile) throw new ToolRefusal('path: files are read only by the stdio server (memory-batch mcp) on their own machine; over HTTP send the memories inline');
          return access.checkFile(input.path, input.format ?? (input.path.toLowerCase().endsWith('.json') ? 'json' : 'jsonl'), settings);
        },
        (checked) =>
          checked.valid ? `${checked.total} memories, all valid` : `${checked.total} memories, ${checked.problems_count} problems: ${checked.problems.map((p) => `${p.path} ${p.message}`).join('; ')}`,
      ),
  );

  server.registerTool(
    'get_batch',
    {
      title: 'Get a batch',
      description: scoped("A batch's status, counts and timestamps."),
      inputSchema: { batch_id: batchId },
      outputSchema: batchStatusResponseSchema,
      annotations: { readOnlyHint: true },
    },
    ({ batch_id }) =>
      answer(
        log,
        () => access.status(batch_id),
        (batch) => describe(summaryOf(batch)),
      ),
  );

  server.registerTool(
    'list_batches',
    {
      title: 'List batches',
      description: scoped(
        "The connected user's own batches, newest first, a page at a time, optionally filtered by status, namespace and creation time; pass the answer's next_cursor as after for the next page.",
      ),
      inputSchema: batchListQuerySchema,
      outputSchema: batchListResponseSchema,
      annotations: { readOnlyHint: true },
    },
    (query) =>
      answer(
        log,
        () => access.list(query),
        (list) =>
          `${list.batches.length} batches${list.batches.length ? `: ${list.batches.map((b) => `${b.batch_id} ${b.status}`).join(', ')}` : ''}${list.next_cursor === undefined ? '' : `; more after ${list.next_cursor}`}`,
      ),
  );

  server.registerTool(
    'get_batch_failures',
    {
      title: 'Failed items of a batch',
      description: scoped(
        `The items of a finished batch that were not stored, with their index and error, a page at a time (at most limit items and ${MCP_READ_MAX_BYTES / 1024} KB; next_offset when more follow).`,
      ),
      inputSchema: pageFields.extend({ batch_id: batchId }),
      outputSchema: failuresSchema,
      annotations: { readOnlyHint: true },
    },
    ({ batch_id, offset, limit }) =>
      answer(
        log,
        async () => {
          const failures: MemoryProcessingResult[] = [];
          let skipped = 0;
          let bytes = 0;
          let more = false;
          // The page ends at `limit` items or MCP_READ_MAX_BYTES, whichever comes first; the next item read tells
          // whether another page follows, and reading stops there.
          for await (const result of access.results(batch_id)) {
            if (result.success) continue;
            if (skipped < offset) {
              skipped++;
              continue;
            }
            bytes += Buffer.byteLength(JSON.stringify(result)) + 1;
            if (failures.length === limit || (failures.length > 0 && bytes > MCP_READ_MAX_BYTES)) {
              more = true;
              break;
            }
            failures.push(result);
          }
          return { batch_id, failures, ...(more ? { next_offset: offset + failures.length } : {}) };
        },
        (page) =>
          `${page.failures.length} failed items${page.failures.length ? `: ${page.failures.map((f) => `[${f.index}] ${f.error}`).join('; ')}` : ''}${page.next_offset === undefined ? '' : `; more from offset ${page.next_offset}`}`,
      ),
  );

  server.registerTool(
    'cancel_batch',
    {
      title: 'Cancel a batch',
      description: scoped('Stops a batch of your own; memories stored so far stay. Answers once it has stopped.'),
      inputSchema: { batch_id: batchId },
      outputSchema: batchSummarySchema,
      annotations: { destructiveHint: true, idempotentHint: true },
    },
    ({ batch_id }) => answer(log, async () => summaryOf(await access.cancel(batch_id)), describe),
  );

  server.registerTool(
    'delete_batch',
    {
      title: 'Delete a batch',
      description: scoped(
        'Undoes an import of your own: removes every memory the batch created and its stored files (a running batch is stopped first). Answers as the deletion begins (status deleting); the batch ends deleted. Cannot be undone.',
      ),
      inputSchema: { batch_id: batchId },
      outputSchema: batchSummarySchema,
      annotations: { destructiveHint: true, idempotentHint: true },
    },
    ({ batch_id }) => answer(log, async () => summaryOf(await access.delete(batch_id)), describe),
  );

  server.registerTool(
    'retry_failed',
    {
      title: 'Retry failed items',
      description: scoped('A new batch of the items a finished batch of your own did not store (failed, or never reached); answers the new batch.'),
      inputSchema: { batch_id: batchId },
      outputSchema: batchSummarySchema,
    },
    ({ batch_id }) => answer(log, async () => summaryOf(await access.retryFailed(batch_id)), describe),
  );

  server.registerResource(
    'batch',
    new ResourceTemplate('batch://{id}', { list: undefined }),
    { title: 'Batch status', description: scoped("A batch's status, counts and timestamps (JSON)"), mimeType: 'application/json' },
    async (uri, { id }) => {
      try {
        const status = await access.status(checkedId(id));
        return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(status) }] };
      } catch (error) {
        throw resourceError(error, log);
      }
    },
  );

  server.registerResource(
    'batch-results',
    new ResourceTemplate('batch://{id}/results', { list: undefined }),
    {
      title: 'Batch results',
      description: scoped(
        `Per-item results of a finished batch, one JSON object per line: the first ${RESOURCE_MAX_RESULTS}, at most ${MCP_READ_MAX_BYTES / 1024} KB (_meta.truncated says more exist; get_batch_failures pages the failures, the REST route GET /api/v1/memory/batch/{id}/results streams them all)`,
      ),
      mimeType: 'application/x-ndjson',
    },
    async (uri, { id }) => {
      try {
        const batchId = checkedId(id);
        const lines: string[] = [];
        let bytes = 0;
        let more = false;
        for await (const result of access.results(batchId)) {
          const line = JSON.stringify(result);
          bytes += Buffer.byteLength(line) + 1;
          if (lines.length === RESOURCE_MAX_RESULTS || bytes > MCP_READ_MAX_BYTES) {
            more = true;
            break;
          }
          lines.push(line);
        }
        const truncated = more ? { _meta: { truncated: true, shown: lines.length, all: `GET /api/v1/memory/batch/${batchId}/results`, failures: 'get_batch_failures' } } : {};
        return { contents: [{ uri: uri.href, mimeType: 'application/x-ndjson', text: lines.map((line) => `${line}\n`).join(''), ...truncated }] };
      } catch (error) {
        throw resourceError(error, log);
      }
    },
  );

  return server;
}

/** A batch id from a resource URI: anything that is not one is not found. */
function checkedId(id: string | string[]): string {
  const value = Array.isArray(id) ? id.join(',') : id;
  if (!BATCH_ID_PATTERN.test(value)) throw new BatchError(404, 'not_found', `batch ${value} not found`);
  return value;
}
