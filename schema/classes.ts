/**
 * Parse class definitions, given to Parse Server's `schema` option.
 * Writes to every class are master-key only: clients reach them through the
 * Cloud Functions and the REST route. Reads are filtered by ACLs.
 */

export const CLASS = {
  batch: 'BatchMemoryRequest',
  part: 'BatchMemoryPart',
  chunk: 'BatchMemoryChunk',
  memory: 'Memory',
  organization: 'Organization',
  workspace: 'Workspace',
  namespace: 'Namespace',
} as const;

const pointer = (targetClass: string, required = false) => ({ type: 'Pointer', targetClass, required });
const authenticatedRead = {
  find: { requiresAuthentication: true },
  get: { requiresAuthentication: true },
  count: { requiresAuthentication: true },
  create: {},
  update: {},
  delete: {},
  addField: {},
};
export const masterOnly = { find: {}, get: {}, count: {}, create: {}, update: {}, delete: {}, addField: {} };

/** Fields only the master key sees on a BatchMemoryRequest. */
export const BATCH_PROTECTED_FIELDS = ['batchFile', 'resultsFile', 'resultsParts', 'partsKey', 'webhookSecret', 'requestHash'];
/** Fields the owner of a batch sees and the members of its organization do not (a webhook URL is often a secret itself; metadata is the owner's). */
export const BATCH_OWNER_FIELDS = ['webhookUrl', 'idempotencyKey', 'metadata'];

export const classDefinitions = [
  {
    className: '_User',
    // `organization` is written by the server and the operator only (a beforeSave trigger refuses clients).
    fields: { organization: pointer(CLASS.organization) },
    // Sign-up is open; a user reads, edits and deletes only their own row (its ACL); nobody lists users.
    classLevelPermissions: {
      find: {},
      count: {},
      get: { requiresAuthentication: true },
      create: { '*': true },
      update: { requiresAuthentication: true },
      delete: { requiresAuthentication: true },
      addField: {},
    },
  },
  {
    // Organization roles (`org_<id>`) are the server's record of who belongs where: master key only.
    className: '_Role',
    fields: {},
    classLevelPermissions: masterOnly,
  },
  {
    className: CLASS.organization,
    // `role`: the organization's role as the server created it; only its users (and a personal organization's owner) are members.
    fields: { name: { type: 'String', required: true }, owner: pointer('_User'), key: { type: 'String' }, role: pointer('_Role') },
    classLevelPermissions: authenticatedRead,
  },
  {
    className: CLASS.workspace,
    fields: { name: { type: 'String', required: true }, organization: pointer(CLASS.organization, true) },
    classLevelPermissions: authenticatedRead,
  },
  {
    className: CLASS.namespace,
    fields: {
      name: { type: 'String', required: true },
      organization: pointer(CLASS.organization, true),
      workspace: pointer(CLASS.workspace),
      key: { type: 'String', required: true },
    },
    classLevelPermissions: authenticatedRead,
  },
  {
    className: CLASS.batch,
    fields: {
      organization: pointer(CLASS.organization, true),
      user: pointer('_User', true),
      workspace: pointer(CLASS.workspace),
      namespace: pointer(CLASS.namespace),
      batchFile: { type: 'File', required: true },
      partsKey: { type: 'String' },
      partCount: { type: 'Number' },
      status: { type: 'String', required: true, defaultValue: 'pending' },
      error: { type: 'String' },
      totalMemories: { type: 'Number', required: true },
      processedMemories: { type: 'Number', defaultValue: 0 },
      failedMemories: { type: 'Number', defaultValue: 0 },
      resultsFile: { type: 'File' },
      resultsParts: { type: 'Array' },
      workflowId: { type: 'String' },
      idempotencyKey: { type: 'String' },
      requestHash: { type: 'String' },
      webhookUrl: { type: 'String' },
      webhookSecret: { type: 'String' },
      metadata: { type: 'Object' },
      rawBytes: { type: 'Number' },
      storedBytes: { type: 'Number' },
      startedAt: { type: 'Date' },
      completedAt: { type: 'Date' },
      expiresAt: { type: 'Date' },
      filesExpiredAt: { type: 'Date' },
      deletedMemories: { type: 'Number' },
      deletedAt: { type: 'Date' },
      retryOf: pointer(CLASS.batch),
      webhookStatus: { type: 'String' },
      webhookAttempts: { type: 'Number' },
      webhookDeliveredAt: { type: 'Date' },
      webhookError: { type: 'String' },
    },
    // Parse intersects the lists that apply: the owner (`userField:user`) is spared BATCH_OWNER_FIELDS only.
    classLevelPermissions: { ...authenticatedRead, protectedFields: { '*': [...BATCH_PROTECTED_FIELDS, ...BATCH_OWNER_FIELDS], 'userField:user': BATCH_PROTECTED_FIELDS } },
    indexes: { status: { status: 1 } },
  },
  {
    // One stored part file of a batch. Kept apart from the request so that the request stays small
    // (it is saved after every chunk, and each save carries the whole object through triggers and LiveQuery).
    className: CLASS.part,
    fields: {
      key: { type: 'String', required: true },
      partsKey: { type: 'String', required: true },
      index: { type: 'Number', required: true },
      name: { type: 'String', required: true },
      first: { type: 'Number', required: true },
      count: { type: 'Number', required: true },
      rawBytes: { type: 'Number', required: true },
      storedBytes: { type: 'Number', required: true },
    },
    classLevelPermissions: masterOnly,
    indexes: { partsKey: { partsKey: 1 } },
  },
  {
    className: CLASS.chunk,
    fields: {
      batch: pointer(CLASS.batch, true),
      key: { type: 'String', required: true },
      part: { type: 'Number', required: true },
      first: { type: 'Number', required: true },
      count: { type: 'Number', required: true },
      processed: { type: 'Number', required: true },
      failed: { type: 'Number', required: true },
      results: { type: 'Array', required: true },
      attempt: { type: 'Number' },
    },
    classLevelPermissions: masterOnly,
    // finalizeBatch, a resumed part and a retry read a batch's chunk rows part by part in order of `first`, a page
    // at a time: without an index each page scanned every chunk row (13 s of the database's time finalizing a
    // million memories).
    indexes: { batch_part_first: { batch: 1, part: 1, first: 1 } },
  },
  {
    className: CLASS.memory,
    fields: {
      content: { type: 'String', required: true },
      metadata: { type: 'Object' },
      embedding: { type: 'Array' },
      source: { type: 'String' },
      tags: { type: 'Array' },
      organization: pointer(CLASS.organization),
      workspace: pointer(CLASS.workspace),
      namespace: pointer(CLASS.namespace),
      user: pointer('_User', true),
      batch: pointer(CLASS.batch),
      batchIndex: { type: 'Number' },
      batchItem: { type: 'String' },
      customId: { type: 'String' },
    },
    classLevelPermissions: authenticatedRead,
    indexes: { batch_index: { batch: 1, batchIndex: 1 } },
  },
];

/** Unique keys, which the `schema` option cannot declare: created through the storage adapter at start-up. */
export const uniqueKeys: { className: string; field: string }[] = [
  { className: CLASS.memory, field: 'batchItem' },
  { className: CLASS.chunk, field: 'key' },
  { className: CLASS.part, field: 'key' },
  { className: CLASS.namespace, field: 'key' },
  { className: CLASS.organization, field: 'key' },
  { className: CLASS.batch, field: 'idempotencyKey' },
];

/** The id of a saved Parse object (the SDK types it as optional). */
export function idOf(object: { id?: string }): string {
  if (!object.id) throw new Error('object has no id: it was never saved');
  return object.id;
}

/** Key of one stored part: the batch's parts key and the part's index. */
export function partKey(partsKey: string, index: number): string {
  return `${partsKey}:${index}`;
}

/** Role that gives an organization's members read access. */
export function organizationRoleName(organizationId: string): string {
  return `org_${organizationId}`;
}
