/**
 * Claim-check storage (docs/requirements.md §1 and §5):
 * a validated batch is compressed into parts in Parse File storage and
 * referenced from a BatchMemoryRequest; Temporal only ever sees its id.
 */
import { randomUUID } from 'node:crypto';
import Parse from '../schema/parseSdk';
import { type Config, publicServerURL } from '../config';
import type { Logger } from '../config/log';
import { type ParseEndpoint, STORED_FILE_PREFIX, encodeLines, fileField } from '../schema/batchFile';
import { type StoredPart, batchRecordOf } from '../schema/records';
import type { BatchStorage } from '../storage/batchStorage';
import { CLASS, idOf, organizationRoleName, partKey } from '../schema/classes';
import { type StoredMemory, isStatusRefusal } from '../schema/memory';
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
  metadata?: Record<string, unknown>;
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
  private indexed = 0;
  /** Parts `onPart` has taken: a batch references them from then on. */
  handedOver = 0;

  constructor(
    private readonly storage: BatchStorage,
    private readonly limits: { maxItems: number; maxBytes: number; gzipLevel: number },
    /** Set for a batch processed while uploading: called with the parts so far once each is stored and indexed. */
    private readonly onPart?: (stored: StoredParts) => Promise<void>,
  ) {}

  async add(item: StoredMemory): Promise<void> {
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
    if (this.onPart) {
      await this.index();
      await this.onPart(this.result());
      this.handedOver = this.parts.length;
    }
  }

  /** Saves the index rows of the uploaded parts not indexed yet, in one bulk create. */
  async index(): Promise<void> {
    const rows = this.parts.slice(this.indexed).map((part, k) => ({ key: partKey(this.stem, this.indexed + k), partsKey: this.stem, index: this.indexed + k, ...part, ACL: {} }));
    for (const answer of rows.length ? await this.storage.createObjects(CLASS.part, rows) : []) {
      if ('error' in answer) throw new Error(`the part index of ${this.stem} could not be saved: ${answer.error.code} ${answer.error.error}`);
    }
    this.indexed = this.parts.length;
  }

  result(): StoredParts {
    const parts = [...this.parts];
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
  async writeParts(memories: Iterable<StoredMemory> | AsyncIterable<StoredMemory>): Promise<StoredParts> {
    const writer = this.partWriter();
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

  private partWriter(onPart?: (stored: StoredParts) => Promise<void>): PartWriter {
    return new PartWriter(this.storage, { maxItems: this.config.BATCH_PART_MAX_ITEMS, maxBytes: this.config.BATCH_PART_MAX_BYTES, gzipLevel: this.config.BATCH_GZIP_LEVEL }, onPart);
  }

  /**
   * For a batch processed while uploading: stores memories part by part and hands each stored, indexed part
   * to `onPart` at once. A failure of the memories (a bad line, a broken body) before any part was taken
   * removes what was stored and is thrown, as writeParts does; after, the memories before the failure are
   * stored as a last part and the failure is returned with the parts, which a batch references now.
   */
  async writePartsAsStored(memories: AsyncIterable<StoredMemory>, onPart: (stored: StoredParts) => Promise<void>): Promise<{ stored: StoredParts; failure?: unknown }> {
    const writer = this.partWriter(onPart);
    try {
      for await (const memory of memories) await writer.add(memory);
      await writer.flush();
      return { stored: writer.result() };
    } catch (failure) {
      if (writer.handedOver === 0) {
        await discardParts(this.storage, writer.stem, writer.parts);
        throw failure;
      }
      // The last part may be the one that failed to be taken (its batch cancelled, a database error): what is stored is reported as it is.
      await writer.flush().catch((error: unknown) => this.log.warn('the last part of a broken upload was not stored', { partsKey: writer.stem, error: (error as Error).message }));
      return { stored: writer.result(), failure };
    }
  }

  /** Creates the request over stored parts (`pending`, or `receiving` while its body still arrives); deletes the parts if that fails. */
  async createRequest(request: NewBatch, status: 'pending' | 'receiving' = 'pending'): Promise<Parse.Object> {
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
      status,
      totalMemories: request.parts.total,
      processedMemories: 0,
      failedMemories: 0,
      rawBytes: request.parts.rawBytes,
      storedBytes: request.parts.storedBytes,
      expiresAt: new Date(Date.now() + this.config.BATCH_FILE_EXPIRY_DAYS * 86_400_000),
      ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey, requestHash: request.requestHash } : {}),
      ...(request.webhookUrl ? { webhookUrl: request.webhookUrl, webhookSecret: request.webhookSecret } : {}),
      ...(request.metadata ? { metadata: request.metadata } : {}),
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

  /** Records the parts of a batch stored so far while its body arrives; refused (409) once the batch was cancelled. */
  async recordParts(batch: Parse.Object, stored: StoredParts): Promise<void> {
    // `receiving` again: the write is a compare-and-set on the status, which fails once a cancel has landed.
    batch.set({ status: 'receiving', ...partTotals(stored) });
    try {
      await batch.save(null, master);
    } catch (error) {
      if (!isStatusRefusal(error)) throw error;
      batch.revert();
      throw new BatchError(409, 'conflict', `batch ${idOf(batch)} was cancelled while its body arrived; it holds the memories stored before`, [], undefined, idOf(batch));
    }
  }

  /**
   * Ends the body of a batch processed while uploading: its final parts and total, and either the request's
   * hash (an idempotent repeat is compared with it) or the error the body broke with. It goes on as
   * `processing`, or `pending` if its workflow has not begun (the reconciler starts it); the workflow ends
   * a batch with an error `failed` once it has processed the memories before the break. A batch cancelled
   * meanwhile stays cancelled.
   */
  async seal(batch: Parse.Object, stored: StoredParts, ending: { requestHash: string } | { error: string }): Promise<void> {
    const { status, startedAt } = batchRecordOf(await batch.fetch(master));
    if (status !== 'receiving') return;
    batch.set({ status: startedAt ? 'processing' : 'pending', ...partTotals(stored), ...ending });
    try {
      await batch.save(null, master);
    } catch (error) {
      if (!isStatusRefusal(error)) throw error;
      batch.revert();
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

function partTotals(stored: StoredParts): { partCount: number; totalMemories: number; rawBytes: number; storedBytes: number } {
  return { partCount: stored.parts.length, totalMemories: stored.total, rawBytes: stored.rawBytes, storedBytes: stored.storedBytes };
}

export function batchACL(userId: string, organizationId: string): Parse.ACL {
  const acl = new Parse.ACL();
  acl.setReadAccess(userId, true);
  acl.setRoleReadAccess(organizationRoleName(organizationId), true);
  return acl;
}
