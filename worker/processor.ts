import type { MemoryItem } from '../schema/memory';

/** Where a memory comes from, for processors that need it. */
export interface MemoryContext {
  batchId: string;
  index: number;
  userId: string;
  organizationId: string;
  workspaceId?: string;
  namespaceId?: string;
  attempt: number;
}

export interface PersistedMemory {
  index: number;
  memoryId: string;
}

/**
 * The deployment's hook into memory processing (embedding, extraction, indexing).
 * The default persists memories as they are.
 */
export interface MemoryProcessor {
  /**
   * Turns a stored item into the memory to persist. Throw MemoryRejectedError to fail
   * this item only; any other error is transient and retries the chunk.
   */
  prepare?(item: MemoryItem, context: MemoryContext): Promise<MemoryItem> | MemoryItem;
  /** Runs after a chunk's memories are persisted (with ids); may run again for the same chunk on retry. */
  afterPersist?(memories: PersistedMemory[], context: Omit<MemoryContext, 'index'>): Promise<void> | void;
}

/** Fails one memory without retrying: the batch goes on and the item's result carries the message. */
export class MemoryRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MemoryRejectedError';
  }
}

export const persistOnlyProcessor: MemoryProcessor = {};

/** Loads MEMORY_PROCESSOR_MODULE's default export, or the persist-only default. */
export function loadProcessor(modulePath: string | undefined): MemoryProcessor {
  if (!modulePath) return persistOnlyProcessor;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded = require(require.resolve(modulePath, { paths: [process.cwd()] })) as { default?: MemoryProcessor };
  return loaded.default ?? (loaded as MemoryProcessor);
}
