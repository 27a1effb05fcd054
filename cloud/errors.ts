import type { ValidationDetail } from '../schema/memory';

export type BatchErrorCode = 'invalid_request' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'too_large' | 'rate_limited' | 'unavailable' | 'expired' | 'timeout' | 'internal';

/** An error a client caused or must know about; carries the HTTP status the REST route answers with. */
export class BatchError extends Error {
  constructor(
    readonly status: number,
    readonly code: BatchErrorCode,
    message: string,
    readonly details: ValidationDetail[] = [],
    /** For a 429: seconds until a retry may succeed (the Retry-After header). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'BatchError';
  }
}
