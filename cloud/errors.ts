import Parse from '../schema/parseSdk';
import type { z } from 'zod';
import { type ValidationDetail, describeDetails, validationDetails } from '../schema/memory';

export type BatchErrorCode =
  'invalid_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'too_large' | 'rate_limited' | 'unavailable' | 'expired' | 'deleted' | 'timeout' | 'internal';

/** An error a client caused or must know about; carries the HTTP status the REST route answers with. */
export class BatchError extends Error {
  constructor(
    readonly status: number,
    readonly code: BatchErrorCode,
    message: string,
    readonly details: ValidationDetail[] = [],
    /** For a 429: seconds until a retry may succeed (the Retry-After header). */
    readonly retryAfterSeconds?: number,
    /** A batch the request created before it was refused (process=while_uploading). */
    readonly batchId?: string,
  ) {
    super(message);
    this.name = 'BatchError';
  }
}

/** Attempts of a read that Parse Server failed with INTERNAL_SERVER_ERROR, and the pause before each retry. */
const READ_ATTEMPTS = 3;
const READ_RETRY_DELAY_MS = 100;

/**
 * Runs a read again when Parse Server failed it with INTERNAL_SERVER_ERROR (code 1), which is what it
 * answers when the database dropped the connection under the query (a failover, a terminated backend).
 * The pause lets the pool notice its other dropped connections, so that the retry gets a live one.
 * `retryable` says whether nothing was sent yet.
 */
export async function retryRead<T>(read: () => Promise<T>, retryable: () => boolean = () => true): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if (attempt >= READ_ATTEMPTS || (error as Parse.Error).code !== Parse.Error.INTERNAL_SERVER_ERROR || !retryable()) throw error;
      await new Promise((resolve) => setTimeout(resolve, READ_RETRY_DELAY_MS));
    }
  }
}

/** `value` as `schema` reads it, or a 400 naming each problem: "invalid <what>: …". */
export function parsedOrRefused<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const details = validationDetails(parsed.error);
  throw new BatchError(400, 'invalid_request', `invalid ${what}: ${describeDetails(details)}`, details);
}
