/** What crosses Temporal: names, ids and small fixed-size shapes only, never batch data. */
import type { BatchStatus } from './memory';

export const BATCH_WORKFLOW_TYPE = 'batchMemoryWorkflow';
export const PROGRESS_QUERY = 'progress';
export const PARTS_STORED_SIGNAL = 'partsStored';
export const EXPIRY_WORKFLOW_TYPE = 'expireBatchFilesWorkflow';
export const DELETE_WORKFLOW_TYPE = 'deleteBatchWorkflow';
/** The Schedule id before it was one per app: a Schedule of that id found on the app's task queue is replaced. */
export const LEGACY_EXPIRY_SCHEDULE_ID = 'batch-memory-file-expiry';

/** The expiry Schedule of the app whose workers poll `taskQueue`: one per app in a shared Temporal namespace. */
export function expiryScheduleIdFor(taskQueue: string): string {
  return `${LEGACY_EXPIRY_SCHEDULE_ID}-${taskQueue}`;
}

export function workflowIdFor(batchId: string): string {
  return `batch-memory-${batchId}`;
}

/** The workflow that undoes a batch's import. */
export function deleteWorkflowIdFor(batchId: string): string {
  return `batch-memory-delete-${batchId}`;
}

export function webhookWorkflowIdFor(batchId: string): string {
  return `batch-memory-webhook-${batchId}`;
}

/** Carried from one run to the next when the workflow continues as new. */
export interface BatchWorkflowResume {
  nextPart: number;
  processed: number;
  failed: number;
  deadline: number;
}

export interface BatchWorkflowInput {
  batchId: string;
  resume?: BatchWorkflowResume;
}

/** Workflow settings read by an activity, so that the workflow code stays free of configuration I/O. */
export interface BatchSettings {
  timeoutMs: number;
  partConcurrency: number;
  partsPerRun: number;
  heartbeatTimeoutMs: number;
  /** While the body still arrives, how long the workflow waits for a signal of new parts before it reads the request again. */
  uploadPollMs: number;
  /** A batch of one part this small runs it as a local activity. */
  localPartMaxItems: number;
}

/** Whose a batch is: ids only, so that each part activity need not read the request again. */
export interface BatchOwner {
  userId: string;
  organizationId: string;
  workspaceId?: string;
  namespaceId?: string;
}

/** Where a part's memories are: its stored file and the batch indexes it holds. */
export interface PartFile {
  name: string;
  first: number;
  count: number;
}

/**
 * Sent by Parse Server as a batch processed while uploading stores its parts: counts only. The workflow
 * reads the request again if a signal is lost, so a signal only saves waiting.
 */
export interface PartsStored {
  partCount: number;
  /** The body has ended: no part follows. */
  sealed: boolean;
}

export interface BatchManifest {
  total: number;
  partCount: number;
  partsKey: string;
  owner: BatchOwner;
  /** A batch of one part: that part, read from the request (its batchFile), so that no index lookup is needed. */
  onlyPart?: PartFile;
  status: BatchStatus;
  /** The batch's end is recorded (completedAt): a cancelled batch whose end is not was cancelled while its workflow ran, which records it. */
  ended: boolean;
  settings: BatchSettings;
}

export interface PartInput {
  batchId: string;
  part: number;
  partsKey: string;
  owner: BatchOwner;
  /** Set when this is the batch's only part (the manifest names it); otherwise its index row is read. */
  onlyPart?: PartFile;
}

export interface Counts {
  processed: number;
  failed: number;
}

/** Whether a batch is ready to have its memories removed (it is `deleting`), and the settings of that removal. */
export interface DeleteReadiness {
  ready: boolean;
  heartbeatTimeoutMs: number;
}

export interface FinalizeInput {
  batchId: string;
  status: Extract<BatchStatus, 'completed' | 'failed' | 'cancelled'>;
  error?: string;
}

export interface FinalizeOutcome extends Counts {
  /** The batch has a webhook to deliver. */
  webhook: boolean;
}

export interface BatchProgress extends Counts {
  batchId: string;
  total: number;
  partCount: number;
  partsDone: number;
  status: BatchStatus | 'starting';
}

/** What one run of the expiry job removed. */
export interface ExpiryOutcome {
  batches: number;
  files: number;
}

/** Error types an activity throws that no retry can fix. */
export const NON_RETRYABLE_ERRORS = ['BatchDataError'];
