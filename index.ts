/**
 * Public API of the plugin: mount the batch pipeline into a Parse Server app,
 * run workers, and boot the local stack.
 */
export { type Config, ConfigError, configVariables, loadConfig } from './config';
export { createLogger, type Logger } from './config/log';
export { type ParseApp, type ParseAppOptions, databaseURI, startParseApp } from './cloud/server';
export { registerCloudCode } from './cloud/main';
export { BatchService, type Actor } from './cloud/batchService';
export { BatchStore } from './cloud/batchStore';
export { BatchError } from './cloud/errors';
export { BatchWorkflows } from './cloud/temporal';
export { type BatchOwnership, type OwnershipResolver, defaultOwnershipResolver } from './cloud/organizations';
export { classDefinitions, uniqueKeys, CLASS } from './schema/classes';
export * from './schema/memory';
export { BATCH_WORKFLOW_TYPE, workflowIdFor, type BatchProgress } from './schema/workflow';
export { createBatchWorker, type BatchWorkerOptions } from './worker/worker';
export { type MemoryProcessor, MemoryRejectedError, type MemoryContext, type PersistedMemory } from './worker/processor';
export { type LocalStack, type LocalStackOptions, startLocalStack } from './scripts/stack';
