/**
 * Claim-check storage (the PRD's store_batch_request / fetch_batch_request_data):
 * a validated batch is compressed into parts in Parse File storage and
 * referenced from a BatchMemoryRequest; Temporal only ever sees its id.
 */
import { randomUUID } from 'node:crypto';
import Parse from 'parse/node';
import type { Config } from '../config';
import type { Logger } from '../config/log';
import {
  type ParseEndpoint,
  STORED_FILE_PREFIX,
  type StoredPart,
  deleteFile,
  encodeLines,
  fileURL,
  planParts,
  uploadFile,
} from '../schema/batchFile';
import { CLASS, idOf, organizationRoleName } from '../schema/classes';
import type { MemoryItem } from '../schema/memory';
import { BatchError } from './errors';
import type { BatchOwnership } from './organizations';

const master = { useMasterKey: true };

export interface StoreRequest {
  user: Parse.User;
  ownership: BatchOwnership;
  memories: MemoryItem[];
  idempotencyKey?: string;
  requestHash?: string;
  webhookUrl?: string;
  webhookSecret?: string;
}

export class BatchStore {
  constructor(
    private readonly config: Config,
    private readonly endpoint: ParseEndpoint,
    private readonly log: Logger,
  ) {}

  /** Compresses and uploads the parts, then creates the pending request. Nothing stays behind on failure. */
  async store(request: StoreRequest): Promise<Parse.Object> {
    const plans = planParts(request.memories, { maxItems: this.config.BATCH_PART_MAX_ITEMS, maxBytes: this.config.BATCH_PART_MAX_BYTES });
    const rawBytes = plans.reduce((sum, p) => sum + p.rawBytes, 0);
    if (rawBytes > this.config.BATCH_SPLIT_WARN_BYTES) {
      this.log.warn('large batch stored in parts', { rawBytes, parts: plans.length, limit: this.config.BATCH_SPLIT_WARN_BYTES });
    }
    const stem = `${STORED_FILE_PREFIX}${randomUUID()}`;
    const parts: StoredPart[] = [];
    try {
      for (const [index, plan] of plans.entries()) {
        const data = await encodeLines(plan.lines);
        const name = await uploadFile(this.endpoint, `${stem}-part-${index}.jsonl.gz`, data);
        parts.push({ name, first: plan.first, count: plan.lines.length, rawBytes: plan.rawBytes, storedBytes: data.length });
      }
      const batch = new Parse.Object(CLASS.batch);
      batch.set({
        organization: request.ownership.organization,
        user: request.user,
        ...(request.ownership.workspace ? { workspace: request.ownership.workspace } : {}),
        ...(request.ownership.namespace ? { namespace: request.ownership.namespace } : {}),
        batchFile: Parse.File.fromJSON({ __type: 'File', name: parts[0].name, url: fileURL(this.endpoint, parts[0].name) }),
        parts,
        partCount: parts.length,
        status: 'pending',
        totalMemories: request.memories.length,
        processedMemories: 0,
        failedMemories: 0,
        rawBytes,
        storedBytes: parts.reduce((sum, p) => sum + p.storedBytes, 0),
        expiresAt: new Date(Date.now() + this.config.BATCH_FILE_EXPIRY_DAYS * 86_400_000),
        ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey, requestHash: request.requestHash } : {}),
        ...(request.webhookUrl ? { webhookUrl: request.webhookUrl, webhookSecret: request.webhookSecret } : {}),
      });
      batch.setACL(batchACL(idOf(request.user), idOf(request.ownership.organization)));
      return await batch.save(null, master);
    } catch (error) {
      await Promise.all(parts.map((p) => deleteFile(this.endpoint, p.name).catch(() => undefined)));
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
