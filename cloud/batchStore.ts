/**
 * Claim-check storage (docs/requirements.md §1 and §5):
 * a validated batch is compressed into parts in Parse File storage and
 * referenced from a BatchMemoryRequest; Temporal only ever sees its id.
 */
import { randomUUID } from 'node:crypto';
import Parse from 'parse/node';
import { type Config, publicServerURL } from '../config';
import type { Logger } from '../config/log';
import { type ParseEndpoint, STORED_FILE_PREFIX, encodeLines, fileField } from '../schema/batchFile';
import type { StoredPart } from '../schema/records';
import type { BatchStorage } from '../storage/batchStorage';
import { CLASS, idOf, organizationRoleName, partKey } from '../schema/classes';
import type { MemoryItem } from '../schema/memory';
import { BatchError } from './errors';
import type { BatchOwnership } from './organizations';

const master = { useMasterKey: true };

export interface NewBatch {
  user: Parse.User;
  ownership: BatchOwnership;
  parts: StoredParts;
  idempotencyKey?: string;
  requestHash?: string;
  webhookUrl?: string;
  webhookSecret?: string;
  /** The batch whose unstored items this one retries. */
  retryOf?: Parse.Object;
}

/** Parts written to file storage and indexed, before a request references them. */
export interface StoredParts {
  partsKey: string;
  parts: StoredPart[];
  total: number;
  rawBytes: number;
  storedBytes: number;
  /** Deletes the files and their index: for a batch that will not be created after all. */
  discard(): Promise<void>;
}

/**
 * Fills parts of at most BATCH_PART_MAX_ITEMS memories and BATCH_PART_MAX_BYTES raw bytes,
 * uploading each as soon as it is full, so that memory use stays at one part for any batch size.
 */
class PartWriter {
  /** File name stem, and the key of the part index rows. */
  readonly stem = `${STORED_FILE_PREFIX}${randomUUID()}`;
  private lines: string[] = [];
  private pendingBytes = 0;
  private total = 0;
  private rawBytes = 0;
  readonly parts: StoredPart[] = [];

  constructor(
    private readonly storage: BatchStorage,
    private readonly limits: { maxItems: number; maxBytes: number; gzipLevel: number },
  ) {}

  async add(item: MemoryItem): Promise<void> {
    const line = JSON.stringify(item);
    const bytes = Buffer.byteLength(line) + 1;
    if (this.lines.length >= this.limits.maxItems || (this.lines.length > 0 && this.pendingBytes + bytes > this.limits.maxBytes)) await this.flush();
    this.lines.push(line);
    this.pendingBytes += bytes;
    this.total++;
    this.rawBytes += bytes;
  }

  async flush(): Promise<void> {
    if (this.lines.length === 0) return;
    const data = await encodeLines(this.lines, this.limits.gzipLevel);
    const name = await this.storage.uploadFile(`${this.stem}-part-${this.parts.length}.jsonl.gz`, data);
    this.parts.push({ name, first: this.total - this.lines.length, count: this.lines.length, rawBytes: this.pendingBytes, storedBytes: data.length });
    this.lines = [];
    this.pendingBytes = 0;
  }

  /** Saves the index rows of the uploaded parts, in one bulk create. */
  async index(): Promise<void> {
    const rows = this.parts.map((part, index) => ({ key: partKey(this.stem, index), partsKey: this.stem, index, ...part, ACL: {} }));
    for (const answer of rows.length ? await this.storage.createObjects(CLASS.part, rows) : []) {
      if ('error' in answer) throw new Error(`the part index of ${this.stem} could not be saved: ${answer.error.code} ${answer.error.error}`);
    }
  }

  result(): StoredParts {
    const parts = this.parts;
    return {
      partsKey: this.stem,
      parts,
      total: this.total,
      rawBytes: this.rawBytes,
      storedBytes: parts.reduce((sum, p) => sum + p.storedBytes, 0),
      discard: () => discardParts(this.storage, this.stem, parts),
    };
  }
}

async function discardParts(storage: BatchStorage, partsKey: string, parts: StoredPart[]): Promise<void> {
  await Promise.all(parts.map((p) => storage.deleteFile(p.name).catch(() => undefined)));
  const rows = await new Parse.Query(CLASS.part)
    .equalTo('partsKey', partsKey)
    .limit(parts.length + 1)
    .find(master);
  await Parse.Object.destroyAll(rows, master).catch(() => undefined);
}

export class BatchStore {
  constructor(
    private readonly config: Config,
    private readonly endpoint: ParseEndpoint,
    private readonly storage: BatchStorage,
    private readonly log: Logger,
  ) {}

  /** Compresses and uploads memories part by part. If the memories fail (a bad line of a stream), nothing stays behind. */
  async writeParts(memories: Iterable<MemoryItem> | AsyncIterable<MemoryItem>): Promise<StoredParts> {
    const writer = new PartWriter(this.storage, { maxItems: this.config.BATCH_PART_MAX_ITEMS, maxBytes: this.config.BATCH_PART_MAX_BYTES, gzipLevel: this.config.BATCH_GZIP_LEVEL });
    try {
      for await (const memory of memories) await writer.add(memory);
      await writer.flush();
      await writer.index();
    } catch (error) {
      await discardParts(this.storage, writer.stem, writer.parts);
      throw error;
    }
    const stored = writer.result();
    if (stored.rawBytes > this.config.BATCH_SPLIT_WARN_BYTES) {
      this.log.warn('large batch stored in parts', { rawBytes: stored.rawBytes, parts: stored.parts.length, limit: this.config.BATCH_SPLIT_WARN_BYTES });
    }
    return stored;
  }

  /** Creates the pending request over stored parts; deletes the parts if that fails. */
  async createRequest(request: NewBatch): Promise<Parse.Object> {
    const { parts } = request.parts;
    const batch = new Parse.Object(CLASS.batch);
    batch.set({
      organization: request.ownership.organization,
      user: request.user,
      ...(request.ownership.workspace ? { workspace: request.ownership.workspace } : {}),
      ...(request.ownership.namespace ? { namespace: request.ownership.namespace } : {}),
      batchFile: fileField(publicServerURL(this.config), this.endpoint.appId, parts[0].name),
      partsKey: request.parts.partsKey,
      partCount: parts.length,
      status: 'pending',
      totalMemories: request.parts.total,
      processedMemories: 0,
      failedMemories: 0,
      rawBytes: request.parts.rawBytes,
      storedBytes: request.parts.storedBytes,
      expiresAt: new Date(Date.now() + this.config.BATCH_FILE_EXPIRY_DAYS * 86_400_000),
      ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey, requestHash: request.requestHash } : {}),
      ...(request.webhookUrl ? { webhookUrl: request.webhookUrl, webhookSecret: request.webhookSecret } : {}),
      ...(request.retryOf ? { retryOf: request.retryOf } : {}),
    });
    batch.setACL(batchACL(idOf(request.user), idOf(request.ownership.organization)));
    try {
      return await batch.save(null, master);
    } catch (error) {
      await request.parts.discard();
      throw error;
    }
  }

  /**
   * Loads a request the caller may read: the owner or a member of its organization
   * (through the ACL, with their session token), or the master key. Anyone else: not found.
   */
  async load(batchId: string, auth: { sessionToken?: string; master?: boolean }): Promise<Parse.Object> {
    const options = auth.master ? master : { sessionToken: auth.sessionToken };
    if (!auth.master && !auth.sessionToken) throw new BatchError(401, 'unauthorized', 'a logged-in user or the master key is required');
    const readable = await new Parse.Query(CLASS.batch).get(batchId, options).catch((error: Parse.Error) => {
      if (error.code === Parse.Error.OBJECT_NOT_FOUND) return undefined;
      throw error;
    });
    if (!readable) throw new BatchError(404, 'not_found', `batch ${batchId} not found`);
    // Protected fields (the file list) are only visible to the master key.
    return auth.master ? readable : new Parse.Query(CLASS.batch).get(batchId, master);
  }
}

export function batchACL(userId: string, organizationId: string): Parse.ACL {
  const acl = new Parse.ACL();
  acl.setReadAccess(userId, true);
  acl.setRoleReadAccess(organizationRoleName(organizationId), true);
  return acl;
}
