/**
 * The webhook a batch sends when it reaches a terminal status, and its signature:
 * HMAC-SHA256 over `<timestamp>.<body>` with the batch's webhook secret. Receivers
 * check the signature and reject timestamps outside their tolerance (replays).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { batchStatusSchema } from './memory';

export const WEBHOOK_HEADERS = {
  signature: 'x-batch-memory-signature',
  timestamp: 'x-batch-memory-timestamp',
  event: 'x-batch-memory-event',
  delivery: 'x-batch-memory-delivery',
} as const;

/** Default tolerance for the signed timestamp, in seconds. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

export const webhookEventSchema = z.strictObject({
  /** Same for every delivery attempt of one event: receivers deduplicate on it. */
  id: z.string(),
  type: z.enum(['batch.completed', 'batch.failed', 'batch.cancelled']),
  created_at: z.iso.datetime(),
  batch: z.strictObject({
    batch_id: z.string(),
    status: batchStatusSchema,
    success: z.boolean(),
    total: z.number().int().nonnegative(),
    processed: z.number().int().nonnegative(),
    failed: z.number().int().nonnegative(),
    error: z.string().optional(),
    results_url: z.url(),
    /** The batch's metadata, as submitted. */
    metadata: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type WebhookEvent = z.infer<typeof webhookEventSchema>;

function hmac(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** Headers that sign `body` at `timestamp` (Unix seconds). */
export function signWebhook(secret: string, body: string, timestamp: number): Record<string, string> {
  return { [WEBHOOK_HEADERS.timestamp]: String(timestamp), [WEBHOOK_HEADERS.signature]: `v1=${hmac(secret, timestamp, body)}` };
}

export interface WebhookVerification {
  secret: string;
  /** The raw request body, exactly as received. */
  body: string;
  timestamp: string | undefined;
  signature: string | undefined;
  toleranceSeconds?: number;
  now?: number;
}

/** For receivers: true when the signature matches and the timestamp is within the tolerance. */
export function verifyWebhookSignature({ secret, body, timestamp, signature, toleranceSeconds = WEBHOOK_TOLERANCE_SECONDS, now = Date.now() }: WebhookVerification): boolean {
  const seconds = Number(timestamp);
  if (!Number.isInteger(seconds) || Math.abs(now / 1000 - seconds) > toleranceSeconds) return false;
  const expected = Buffer.from(`v1=${hmac(secret, seconds, body)}`);
  const given = Buffer.from(signature ?? '');
  return expected.length === given.length && timingSafeEqual(expected, given);
}
