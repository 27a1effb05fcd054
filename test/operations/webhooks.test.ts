/** Webhooks: signed, retried with backoff by a Temporal activity, and the outcome recorded on the request. */
import { WEBHOOK_HEADERS, verifyWebhookSignature, webhookEventSchema } from '../../schema/webhook';
import { memories, newUser, waitFor } from '../support/helpers';
import { openApiProblems, postJson, rest } from '../support/rest';
import { startWebhookReceiver } from '../support/webhookReceiver';

const SECRET = 'webhook-secret-of-this-test-0123';

test('the webhook arrives signed after the receiver first answered 500 (retried), and the delivery is recorded', async () => {
  const hook = await startWebhookReceiver([500, 204]);
  try {
    const { sessionToken } = await newUser();
    const submitted = await postJson('/memory/batch', { memories: memories(25), webhook_url: hook.url, webhook_secret: SECRET }, { token: sessionToken });
    expect(submitted.status).toBe(200);
    const batchId = submitted.body.batch_id as string;
    await waitFor('two webhook deliveries', async () => (hook.deliveries.length >= 2 ? true : undefined), 60_000);

    const [first, second] = hook.deliveries;
    for (const delivery of [first, second]) {
      const valid = verifyWebhookSignature({
        secret: SECRET,
        body: delivery.body,
        timestamp: delivery.headers[WEBHOOK_HEADERS.timestamp] as string,
        signature: delivery.headers[WEBHOOK_HEADERS.signature] as string,
      });
      expect(valid).toBe(true);
      expect(delivery.headers['content-type']).toBe('application/json');
    }
    // Same event on every attempt, so receivers can deduplicate; a changed body or another secret fails the check.
    expect(second.headers[WEBHOOK_HEADERS.delivery]).toBe(first.headers[WEBHOOK_HEADERS.delivery]);
    const event = webhookEventSchema.parse(JSON.parse(second.body));
    expect(event).toMatchObject({ id: `${batchId}:completed`, type: 'batch.completed', batch: { batch_id: batchId, status: 'completed', success: true, total: 25, processed: 25, failed: 0 } });
    expect(event.batch.results_url).toMatch(new RegExp(`/api/v1/memory/batch/${batchId}/results$`));
    const headers = { timestamp: second.headers[WEBHOOK_HEADERS.timestamp] as string, signature: second.headers[WEBHOOK_HEADERS.signature] as string };
    expect(verifyWebhookSignature({ secret: SECRET, body: second.body.replace('"processed":25', '"processed":24'), ...headers })).toBe(false);
    expect(verifyWebhookSignature({ secret: `${SECRET}x`, body: second.body, ...headers })).toBe(false);
    // A replay outside the tolerance window is refused.
    expect(verifyWebhookSignature({ secret: SECRET, body: second.body, ...headers, now: Date.now() + 10 * 60_000 })).toBe(false);

    const status = await waitFor('the delivery to be recorded', async () => {
      const answer = await rest(`/memory/batch/${batchId}`, { token: sessionToken });
      return answer.body.webhook?.status === 'delivered' ? answer.body : undefined;
    });
    expect(status.webhook).toMatchObject({ status: 'delivered', attempts: 2 });
    expect(status.webhook.error).toBeUndefined();
    expect(await openApiProblems('BatchStatusResponse', status)).toEqual([]);
    expect(hook.deliveries).toHaveLength(2);
  } finally {
    await hook.close();
  }
});

test('a receiver that keeps failing gets WEBHOOK_MAX_ATTEMPTS attempts, then the failure is recorded', async () => {
  const hook = await startWebhookReceiver([503]);
  try {
    const { sessionToken } = await newUser();
    const submitted = await postJson('/memory/batch', { memories: memories(5), webhook_url: hook.url, webhook_secret: SECRET }, { token: sessionToken });
    const status = await waitFor(
      'the webhook to give up',
      async () => {
        const answer = await rest(`/memory/batch/${submitted.body.batch_id}`, { token: sessionToken });
        return answer.body.webhook?.status === 'failed' ? answer.body : undefined;
      },
      60_000,
    );
    expect(status.webhook).toMatchObject({ status: 'failed', attempts: 3, error: 'webhook delivery failed' });
    expect(hook.deliveries).toHaveLength(3);
  } finally {
    await hook.close();
  }
});

test('webhook_url without webhook_secret is refused before anything is stored', async () => {
  const { sessionToken } = await newUser();
  const answer = await postJson('/memory/batch', { memories: memories(2), webhook_url: 'https://receiver.example/hook' }, { token: sessionToken });
  expect(answer.status).toBe(400);
  expect(answer.body.error.message).toMatch(/webhook_secret is required with webhook_url/);
  expect(answer.body.error.details).toEqual([expect.objectContaining({ path: 'webhook_secret' })]);
});
