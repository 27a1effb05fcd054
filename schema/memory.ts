import { z } from 'zod';
import { type IpNetwork, parseIp, restrictedRange } from './network';

/** Keys that could reach an object prototype or a database operator. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
export const MAX_METADATA_DEPTH = 16;
export const MAX_EMBEDDING_LENGTH = 16_384;
export const MAX_TAGS = 100;
export const MAX_TAG_LENGTH = 256;
export const MAX_SOURCE_LENGTH = 1024;
export const MAX_TEXT_FIELD_LENGTH = 512;
export const MAX_CUSTOM_ID_LENGTH = 255;
export const MAX_BATCH_METADATA_KEYS = 16;
export const MAX_BATCH_METADATA_BYTES = 4096;

const wellFormed = (s: string) => s.isWellFormed();
/**
 * U+0000 cannot be stored: PostgreSQL refuses it in text and jsonb (a multi-row INSERT holding one fails whole),
 * and a MongoDB key cannot hold it. Refused at submit on every database, so that both behave alike.
 */
export const NUL_MESSAGE = 'must not contain U+0000';
const withoutNul = (s: string) => !s.includes('\u0000');
const text = (max: number) =>
  z
    .string({ error: 'must be a string' })
    .max(max, { error: `must be at most ${max} characters` })
    .refine(wellFormed, { error: 'must be valid UTF-8 (contains a lone surrogate)' })
    .refine(withoutNul, { error: NUL_MESSAGE });

/** Walks metadata once; reports the first problem with its JSON path. */
function checkMetadata(value: unknown, path: (string | number)[], depth: number, ctx: z.RefinementCtx): void {
  if (depth > MAX_METADATA_DEPTH) {
    ctx.addIssue({ code: 'custom', path, message: `is nested deeper than ${MAX_METADATA_DEPTH} levels` });
    return;
  }
  if (typeof value === 'string') {
    if (!value.isWellFormed()) ctx.addIssue({ code: 'custom', path, message: 'must be valid UTF-8 (contains a lone surrogate)' });
    else if (!withoutNul(value)) ctx.addIssue({ code: 'custom', path, message: NUL_MESSAGE });
    return;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) ctx.addIssue({ code: 'custom', path, message: 'must be a finite number' });
    return;
  }
  if (value === null || typeof value === 'boolean') return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkMetadata(v, [...path, i], depth + 1, ctx));
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const key of Object.keys(value)) {
      if (!withoutNul(key)) {
        // The key itself goes unnamed: the path up to it says where.
        ctx.addIssue({ code: 'custom', path, message: `has a key that ${NUL_MESSAGE}` });
        return;
      }
      if (FORBIDDEN_KEYS.has(key) || key.startsWith('$') || key.includes('.') || key.length === 0 || !key.isWellFormed()) {
        ctx.addIssue({ code: 'custom', path: [...path, key], message: 'is not an allowed key (no __proto__, constructor, prototype, leading $, dots or empty keys)' });
        return;
      }
      checkMetadata((value as Record<string, unknown>)[key], [...path, key], depth + 1, ctx);
    }
    return;
  }
  ctx.addIssue({ code: 'custom', path, message: 'must contain only JSON values' });
}

/** Optional metadata: a JSON object, checked on the raw value (a parsed record would silently drop a `__proto__` key instead of refusing it). */
function optionalMetadataSchema() {
  const schema = z
    .custom<Record<string, unknown>>((m) => typeof m === 'object' && m !== null && !Array.isArray(m), { error: 'must be an object' })
    .superRefine((m, ctx) => checkMetadata(m, [], 1, ctx))
    .optional();
  // A custom type has no JSON Schema of its own; tool and API descriptions need one. Set on the outermost
  // schema, whose JSON Schema is then this alone.
  schema._zod.toJSONSchema = () => ({ type: 'object', description: `JSON values, nested at most ${MAX_METADATA_DEPTH} levels` });
  return schema;
}

/**
 * A batch's own metadata: a JSON object of at most MAX_BATCH_METADATA_KEYS keys and MAX_BATCH_METADATA_BYTES bytes,
 * with the rules of a memory's metadata. Its owner's only: returned in status, listing and webhooks, never to others.
 */
function optionalBatchMetadataSchema() {
  const schema = z
    .custom<Record<string, unknown>>((m) => typeof m === 'object' && m !== null && !Array.isArray(m), { error: 'must be a JSON object' })
    .superRefine((m, ctx) => {
      const keys = Object.keys(m).length;
      if (keys > MAX_BATCH_METADATA_KEYS)
        ctx.addIssue({ code: 'too_big', origin: 'array', maximum: MAX_BATCH_METADATA_KEYS, message: `has ${keys} keys, over the limit of ${MAX_BATCH_METADATA_KEYS}` });
      const bytes = Buffer.byteLength(JSON.stringify(m) ?? '');
      if (bytes > MAX_BATCH_METADATA_BYTES)
        ctx.addIssue({ code: 'too_big', origin: 'string', maximum: MAX_BATCH_METADATA_BYTES, message: `is ${bytes} bytes as JSON, over the limit of ${MAX_BATCH_METADATA_BYTES}` });
      checkMetadata(m, [], 1, ctx);
    })
    .optional();
  // As for a memory's metadata: set on the outermost schema.
  schema._zod.toJSONSchema = () => ({
    type: 'object',
    maxProperties: MAX_BATCH_METADATA_KEYS,
    description: `the batch's own JSON values (at most ${MAX_BATCH_METADATA_KEYS} keys and ${MAX_BATCH_METADATA_BYTES} bytes as JSON), returned to its owner in status, listing and webhooks`,
  });
  return schema;
}

/** One memory as a client sends it (MemoryItem, docs/requirements.md §3). */
export const memoryItemSchema = z.strictObject({
  content: text(Number.MAX_SAFE_INTEGER).refine((s) => s.trim().length > 0, { error: 'must not be empty' }),
  metadata: optionalMetadataSchema(),
  embedding: z
    .array(z.number({ error: 'must be a finite number' }), { error: 'must be an array of numbers' })
    .max(MAX_EMBEDDING_LENGTH, { error: `must have at most ${MAX_EMBEDDING_LENGTH} dimensions` })
    .optional(),
  source: text(MAX_SOURCE_LENGTH).optional(),
  tags: z
    .array(text(MAX_TAG_LENGTH), { error: 'must be an array of strings' })
    .max(MAX_TAGS, { error: `must have at most ${MAX_TAGS} tags` })
    .optional(),
  /** The client's own id of the memory, echoed in its result: results can be matched without relying on order. */
  custom_id: text(MAX_CUSTOM_ID_LENGTH).min(1, { error: 'must not be empty' }).optional(),
});
export type MemoryItem = z.infer<typeof memoryItemSchema>;

/**
 * A memory as its batch's part file holds it: as sent, and in a retry batch also its index in the batch it was
 * first sent in, which the retry's results echo (a retry renumbers the items it takes).
 */
export const storedMemorySchema = memoryItemSchema.extend({ original_index: z.number().int().nonnegative().optional() });
export type StoredMemory = z.infer<typeof storedMemorySchema>;

/**
 * `custom_id` is unique within a batch. Fed the memories in order, answers the index of an earlier memory with the
 * same custom_id, if any. Holds each id once, so a streamed body need not be kept.
 */
export class CustomIds {
  private readonly firstIndexes = new Map<string, number>();

  repeatOf(item: { custom_id?: string }, index: number): number | undefined {
    if (item.custom_id === undefined) return undefined;
    const first = this.firstIndexes.get(item.custom_id);
    if (first === undefined) this.firstIndexes.set(item.custom_id, index);
    return first;
  }
}

/** Why a memory's custom_id is refused when an earlier memory has it (the id itself is not repeated back). */
export function repeatedCustomIdMessage(first: number): string {
  return `repeats the custom_id of memories[${first}]: a custom_id is unique within a batch`;
}

/** Options shared by the Cloud Function and the REST route (their snake_case names, docs/requirements.md §3). */
/** The option fields; `batchOptionsSchema` adds the rules that span fields. */
export const batchOptionsFields = z.strictObject({
  namespace: text(MAX_TEXT_FIELD_LENGTH).min(1, { error: 'must not be empty' }).optional(),
  workspace_id: text(MAX_TEXT_FIELD_LENGTH).min(1, { error: 'must not be empty' }).optional(),
  webhook_url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  webhook_secret: text(MAX_TEXT_FIELD_LENGTH).min(16, { error: 'must be at least 16 characters' }).optional(),
  idempotency_key: text(255).min(1, { error: 'must not be empty' }).optional(),
  wait: z.boolean({ error: 'must be true or false' }).optional(),
  user_id: text(64).min(1).optional(),
  /** In a streamed batch's query string, as JSON text. */
  metadata: optionalBatchMetadataSchema(),
});

/**
 * Why a webhook URL is refused at submit: a host written as a restricted address (in any spelling:
 * the URL parser canonicalises it first), or credentials in the URL. A host name is checked at
 * delivery, on every address it resolves to.
 */
export function webhookUrlProblems(url: string, allowedNetworks: readonly IpNetwork[]): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return []; // the field's own check reports a malformed URL
  }
  const problems: string[] = [];
  const address = parseIp(parsed.hostname);
  const range = address && restrictedRange(address, allowedNetworks);
  if (range) problems.push(`must not point to ${parsed.hostname} (${range}): webhooks reach public addresses only, unless WEBHOOK_ALLOWED_NETWORKS allows one`);
  if (parsed.username || parsed.password) problems.push('must not contain a user name or password');
  return problems;
}

/**
 * A webhook is signed with the batch's secret: URL and secret come together. Its URL may not name a
 * restricted address unless it is inside one of `allowedNetworks`.
 */
function webhookRules(allowedNetworks: readonly IpNetwork[]) {
  return (options: { webhook_url?: string; webhook_secret?: string }, ctx: z.RefinementCtx): void => {
    if (options.webhook_url && !options.webhook_secret) ctx.addIssue({ code: 'custom', path: ['webhook_secret'], message: 'is required with webhook_url (it signs the webhook)' });
    if (options.webhook_secret && !options.webhook_url) ctx.addIssue({ code: 'custom', path: ['webhook_url'], message: 'is required with webhook_secret' });
    for (const message of options.webhook_url ? webhookUrlProblems(options.webhook_url, allowedNetworks) : []) ctx.addIssue({ code: 'custom', path: ['webhook_url'], message });
  };
}

/** The options of a streamed batch (the NDJSON query string); `webhookAllowedNetworks` is WEBHOOK_ALLOWED_NETWORKS. */
export function batchOptionsSchema(webhookAllowedNetworks: readonly IpNetwork[]) {
  return batchOptionsFields.superRefine(webhookRules(webhookAllowedNetworks));
}
export type BatchOptions = z.infer<typeof batchOptionsFields>;

/**
 * When a streamed (NDJSON) batch is processed. `after_upload`, the default: once the whole body has
 * arrived and every line is valid, all or nothing. `while_uploading`: each part as soon as it is stored;
 * a bad line or a broken upload ends the batch `failed`, holding the memories before it.
 */
export const STREAM_PROCESSING_MODES = ['after_upload', 'while_uploading'] as const;
export type StreamProcessing = (typeof STREAM_PROCESSING_MODES)[number];

/** The options of a streamed batch (the query of an NDJSON POST): the batch options and when to process. */
export const streamOptionsFields = batchOptionsFields.extend({
  process: z.enum(STREAM_PROCESSING_MODES, { error: `must be one of ${STREAM_PROCESSING_MODES.join(', ')}` }).optional(),
});

export function streamOptionsSchema(webhookAllowedNetworks: readonly IpNetwork[]) {
  return streamOptionsFields.superRefine(webhookRules(webhookAllowedNetworks));
}
export type StreamOptions = z.infer<typeof streamOptionsFields>;

export interface BatchLimits {
  maxBatchSize: number;
  maxMemorySize: number;
  /** Restricted networks a webhook may reach all the same (WEBHOOK_ALLOWED_NETWORKS). */
  webhookAllowedNetworks: readonly IpNetwork[];
}

/** Bytes a memory occupies as stored: what MAX_MEMORY_SIZE limits. */
export function memoryByteSize(item: unknown): number {
  return Buffer.byteLength(JSON.stringify(item) ?? '');
}

/** Path of the first key anywhere in `value` that could reach a prototype, or undefined. */
export function forbiddenKeyPath(value: unknown, path: (string | number)[] = []): (string | number)[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(key)) return [...path, key];
    const nested = forbiddenKeyPath((value as Record<string, unknown>)[key], [...path, Array.isArray(value) ? Number(key) : key]);
    if (nested) return nested;
  }
  return undefined;
}

/** The whole request of addMemoryBatch / POST /api/v1/memory/batch, with the configured limits. */
export function batchRequestSchema(limits: BatchLimits) {
  return z
    .unknown()
    .superRefine((raw, ctx) => {
      const path = forbiddenKeyPath(raw);
      if (path) ctx.addIssue({ code: 'custom', path, message: 'is not an allowed key (__proto__, constructor and prototype are refused)' });
    })
    .pipe(batchRequestShape(limits));
}

/** One memory with the MAX_MEMORY_SIZE limit applied. */
export function limitedMemoryItemSchema(maxMemorySize: number) {
  return memoryItemSchema.superRefine((item, ctx) => {
    const size = memoryByteSize(item);
    if (size > maxMemorySize) {
      ctx.addIssue({ code: 'too_big', origin: 'string', maximum: maxMemorySize, message: `is ${size} bytes, over MAX_MEMORY_SIZE of ${maxMemorySize} bytes` });
    }
  });
}

function batchRequestShape(limits: BatchLimits) {
  return batchOptionsFields
    .extend({
      memories: z
        .array(limitedMemoryItemSchema(limits.maxMemorySize), { error: 'must be an array of memories' })
        .min(1, { error: 'must contain at least 1 memory' })
        .max(limits.maxBatchSize, { error: `must contain at most MAX_BATCH_SIZE = ${limits.maxBatchSize} memories` }),
    })
    .superRefine(webhookRules(limits.webhookAllowedNetworks))
    .superRefine(({ memories }, ctx) => {
      const customIds = new CustomIds();
      memories.forEach((memory, index) => {
        const first = customIds.repeatOf(memory, index);
        if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['memories', index, 'custom_id'], message: repeatedCustomIdMessage(first) });
      });
    });
}
export type BatchRequest = z.infer<ReturnType<typeof batchRequestSchema>>;

/** One issue of a rejected request: where, what, and the limit when size is the problem. */
export interface ValidationDetail {
  path: string;
  index?: number;
  field?: string;
  message: string;
  limit?: number;
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${String(part)}` : String(part)), '');
}

export function validationDetails(error: z.ZodError, limit = 20): ValidationDetail[] {
  return error.issues.slice(0, limit).map((issue) => {
    const index = issue.path[0] === 'memories' && typeof issue.path[1] === 'number' ? issue.path[1] : undefined;
    const fieldPath = index === undefined ? issue.path : issue.path.slice(2);
    const detail: ValidationDetail = { path: formatPath(issue.path), message: issue.message };
    if (index !== undefined) detail.index = index;
    if (fieldPath.length) detail.field = formatPath(fieldPath);
    if (issue.code === 'too_big') detail.limit = Number(issue.maximum);
    return detail;
  });
}

export function describeDetails(details: ValidationDetail[]): string {
  return details.map((d) => `${d.path || 'request'} ${d.message}`).join('; ');
}

/** What a batch id looks like (Parse object ids); anything else is not found without a lookup. */
export const BATCH_ID_PATTERN = /^[A-Za-z0-9]{1,64}$/;

/**
 * `receiving`: a batch processed while its body still arrives (process=while_uploading), until the body ends.
 * `deleting`, `deleted`: its owner undid the import; the memories it created and its stored files are being, or have
 * been, removed.
 */
export const BATCH_STATUSES = ['receiving', 'pending', 'processing', 'completed', 'failed', 'cancelled', 'deleting', 'deleted'] as const;
export const batchStatusSchema = z.enum(BATCH_STATUSES);
export type BatchStatus = z.infer<typeof batchStatusSchema>;
/** Nothing more happens to a batch in these: a wait for it ends. */
export const TERMINAL_STATUSES: readonly BatchStatus[] = ['completed', 'failed', 'cancelled', 'deleted'];
/** A batch's workflow runs, or is about to: a cancel stops it. */
export const RUNNING_STATUSES: readonly BatchStatus[] = ['receiving', 'pending', 'processing'];
/** A batch's run has ended in these, and its results are kept: it may be retried, or deleted. */
export const ENDED_STATUSES: readonly BatchStatus[] = ['completed', 'failed', 'cancelled'];

/** The message of a refused status move (Parse error VALIDATION_ERROR), from the beforeSave check or the compare-and-set on the status. */
export function statusRefusalMessage(from: BatchStatus, to: BatchStatus): string {
  return `status cannot change from ${from} to ${to}`;
}

export function isStatusRefusal(error: unknown): boolean {
  return /^status cannot change from /.test((error as Error | undefined)?.message ?? '');
}

/**
 * Why one memory failed, as a stable code beside its message (docs/troubleshooting.md): `rejected`, the memory
 * processor refused it; `store_refused`, the database refused its data; `processing_failed`, processing it
 * failed on every one of BATCH_ITEM_MAX_ATTEMPTS attempts.
 */
export const ITEM_ERROR_CODES = ['rejected', 'store_refused', 'processing_failed'] as const;
export const itemErrorCodeSchema = z.enum(ITEM_ERROR_CODES);
export type ItemErrorCode = z.infer<typeof itemErrorCodeSchema>;

/** Result of one memory: its index in the batch (and its custom_id, and in a retry its first index), and the memory id, or the error and its code. */
export const memoryProcessingResultSchema = z.strictObject({
  index: z.number().int().nonnegative(),
  /** The memory's custom_id, when it was sent one. */
  custom_id: z.string().optional(),
  /** In a retry batch: the memory's index in the batch it was first sent in. */
  original_index: z.number().int().nonnegative().optional(),
  success: z.boolean(),
  memory_id: z.string().optional(),
  error: z.string().optional(),
  code: itemErrorCodeSchema.optional(),
});
export type MemoryProcessingResult = z.infer<typeof memoryProcessingResultSchema>;

/** Problems a dry run names at most (it counts them all). */
export const DRY_RUN_MAX_PROBLEMS = 100;

/** A dry run's answer: what a submit of the same body would have found, with nothing stored and nothing started. */
export const dryRunResponseSchema = z.strictObject({
  dry_run: z.literal(true),
  /** A submit of the body would be taken. */
  valid: z.boolean(),
  /** The memories the body holds (lines of an NDJSON body that are memories, valid or not). */
  total: z.number().int().nonnegative(),
  /** The first DRY_RUN_MAX_PROBLEMS problems, each with its path, index, field, message and limit. */
  problems: z.array(z.strictObject({ path: z.string(), index: z.number().int().optional(), field: z.string().optional(), message: z.string(), limit: z.number().optional() })),
  /** Every problem found. */
  problems_count: z.number().int().nonnegative(),
});
export type DryRunResponse = z.infer<typeof dryRunResponseSchema>;

/** Per-item results an answer carries inline at most; a larger batch's answer points to the results download. */
export const INLINE_RESULTS_MAX = 1000;

/** GET …/:id/results: which results, from where, how many (all of them, in batch order, by default). */
export const resultsQuerySchema = z.strictObject({
  status: z.enum(['succeeded', 'failed'], { error: 'must be succeeded or failed' }).optional().describe('only the stored items, or only the failed ones'),
  after: z.number({ error: 'must be a number' }).int({ error: 'must be an integer' }).min(0, { error: 'must be at least 0' }).optional().describe('only items whose index is greater'),
  limit: z.number({ error: 'must be a number' }).int({ error: 'must be an integer' }).min(1, { error: 'must be at least 1' }).optional().describe('at most this many items'),
});
export type ResultsQuery = z.infer<typeof resultsQuerySchema>;

/** BatchMemoryResponse (docs/requirements.md §3), plus the batch status. */
export const batchMemoryResponseSchema = z.strictObject({
  success: z.boolean(),
  batch_id: z.string(),
  status: batchStatusSchema,
  total: z.number().int().nonnegative(),
  processed: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  results: z.array(memoryProcessingResultSchema),
  errors: z.array(z.string()).nullable().optional(),
  /** When the batch has more than INLINE_RESULTS_MAX items: `results` holds the first of them, and all are here. */
  results_url: z.string().optional(),
  /** The batch's metadata, as submitted: its owner's only. */
  metadata: z.record(z.string(), z.unknown()).optional(),
});
export type BatchMemoryResponse = z.infer<typeof batchMemoryResponseSchema>;

/** GET /api/v1/memory/batch/:id: where a batch stands. */
export const batchStatusResponseSchema = z.strictObject({
  batch_id: z.string(),
  status: batchStatusSchema,
  total: z.number().int().nonnegative(),
  processed: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  error: z.string().optional(),
  created_at: z.iso.datetime(),
  updated_at: z.iso.datetime(),
  started_at: z.iso.datetime().optional(),
  completed_at: z.iso.datetime().optional(),
  results_url: z.string().optional(),
  /** When the expiry job deleted the stored memories and results (the counts stay). */
  files_expired_at: z.iso.datetime().optional(),
  /** A deleted batch (status deleting or deleted): how many of its memories the deletion removes. */
  deleted_memories: z.number().int().nonnegative().optional(),
  /** When the deletion of the batch's memories and files finished. */
  deleted_at: z.iso.datetime().optional(),
  /** The batch whose unstored items this batch retries. */
  retry_of: z.string().optional(),
  /** The batch's metadata, as submitted: its owner's only. */
  metadata: z.record(z.string(), z.unknown()).optional(),
  webhook: z
    .strictObject({
      status: z.enum(['pending', 'retrying', 'delivered', 'failed']),
      attempts: z.number().int().nonnegative(),
      delivered_at: z.iso.datetime().optional(),
      error: z.string().optional(),
    })
    .optional(),
});
export type BatchStatusResponse = z.infer<typeof batchStatusResponseSchema>;

export const MAX_PAGE_SIZE = 100;

/** A page of a list: `limit` entries from `offset` on. */
export const pageFields = z.strictObject({
  offset: z.number({ error: 'must be a number' }).int({ error: 'must be an integer' }).min(0, { error: 'must be at least 0' }).default(0).describe('entries to skip'),
  limit: z
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer' })
    .min(1, { error: 'must be at least 1' })
    .max(MAX_PAGE_SIZE, { error: `must be at most ${MAX_PAGE_SIZE}` })
    .default(20)
    .describe(`entries per page, at most ${MAX_PAGE_SIZE}`),
});
export type Page = z.infer<typeof pageFields>;

/** Where a listing goes on: the creation time (milliseconds, base 36) and id of the last batch of the page before. */
export const LIST_CURSOR_PATTERN = /^([0-9a-z]{1,12})\.([A-Za-z0-9]{1,64})$/;

const isoDateTime = () => z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-12-01T00:00:00Z' });

/**
 * Listing the caller's batches (GET /api/v1/memory/batch, listMemoryBatches, MCP list_batches, memory-batch list):
 * filters, and a page by `after` (the cursor a page answered as next_cursor: stable while batches are created) or by
 * `offset`.
 */
export const batchListQuerySchema = pageFields
  .extend({
    status: batchStatusSchema.optional().describe('only batches in this status'),
    namespace: text(MAX_TEXT_FIELD_LENGTH).min(1, { error: 'must not be empty' }).optional().describe('only batches of this namespace'),
    created_after: isoDateTime().optional().describe('only batches created after this time'),
    created_before: isoDateTime().optional().describe('only batches created before this time'),
    after: z.string({ error: 'must be a string' }).regex(LIST_CURSOR_PATTERN, { error: 'must be a next_cursor of an earlier page' }).optional().describe('the next_cursor of the page before'),
  })
  .refine((query) => !(query.after && query.offset), { path: ['after'], error: 'cannot be combined with offset' });
export type BatchListQuery = z.infer<typeof batchListQuerySchema>;

/** GET /api/v1/memory/batch: the caller's batches, newest first; `next_cursor` (and `next_offset`, when paged by offset) when there are more. */
export const batchListResponseSchema = z.strictObject({
  batches: z.array(batchStatusResponseSchema),
  next_offset: z.number().int().nonnegative().optional(),
  next_cursor: z.string().optional(),
});
export type BatchListResponse = z.infer<typeof batchListResponseSchema>;

/** Every error answer of the REST route. */
export const errorResponseSchema = z.strictObject({
  error: z.strictObject({
    code: z.string(),
    message: z.string(),
    details: z.array(
      z.strictObject({
        path: z.string(),
        index: z.number().int().optional(),
        field: z.string().optional(),
        message: z.string(),
        limit: z.number().optional(),
      }),
    ),
    /** A batch the refused request had created all the same (process=while_uploading): it ends failed, holding the memories before the refused line. */
    batch_id: z.string().optional(),
  }),
});
