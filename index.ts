/**
 * Public API of the plugin: mount the batch pipeline into a Parse Server app,
 * run workers, boot the local stack, and talk to the REST route as a client.
 */
export { type Config, ConfigError, configVariables, databaseURI, loadConfig } from './config';
export { createLogger, type Logger } from './config/log';
export { type BatchMemory, type BatchMemoryOptions, type HostParseServerOptions, type ParseServerOptions, checkBatchEndpoint, createBatchMemory, mergeClassDefinitions } from './cloud/plugin';
export { type ParseApp, type ParseAppOptions, startParseApp } from './cloud/server';
export { registerCloudCode } from './cloud/main';
export { BatchService } from './cloud/batchService';
export { BatchStore } from './cloud/batchStore';
export { BatchError } from './cloud/errors';
export { BatchWorkflows } from './cloud/temporal';
export { BatchMaintenance } from './cloud/maintenance';
export { BatchMetrics } from './cloud/metrics';
export { batchRouter } from './cloud/router';
export { RateLimits } from './cloud/rateLimits';
export { type Actor, RouteAuthentication } from './cloud/auth';
export { type BatchOwnership, type OwnershipResolver, createOrganizationRole, defaultOwnershipResolver, isOrganizationMember } from './cloud/organizations';
export { classDefinitions, uniqueKeys, CLASS } from './schema/classes';
export * from './schema/memory';
export { type IpNetwork, parseNetwork } from './schema/network';
export { BATCH_WORKFLOW_TYPE, expiryScheduleIdFor, workflowIdFor, type BatchProgress } from './schema/workflow';
export { WEBHOOK_HEADERS, type WebhookEvent, type WebhookVerification, signWebhook, verifyWebhookSignature, webhookEventSchema } from './schema/webhook';
export { createBatchWorker, type BatchWorkerOptions } from './worker/worker';
export { runWorker } from './worker/main';
export { type MemoryProcessor, MemoryRejectedError, type MemoryContext, type PersistedMemory } from './worker/processor';
export { type LocalStack, type LocalStackOptions, startLocalStack } from './scripts/stack';
export {
  BatchApiError,
  type BatchMemoryAuth,
  BatchMemoryClient,
  type BatchMemoryClientOptions,
  type BatchRequestBody,
  type BatchSettings,
  type BatchSubmission,
  BatchWaitTimeoutError,
  type Chunks,
  type ErrorDetail,
  MemoriesDocumentError,
  type MemoryInput,
  type SubmitOptions,
  type WaitOptions,
  isFinished,
  jsonDocumentToNdjson,
} from './client';
