/** Prometheus metrics: the Parse Server's /metrics follows batches as they run; the worker serves Temporal's worker metrics. */
import { memories, newUser, waitFor } from '../support/helpers';
import { postJson } from '../support/rest';
import { stackInfo } from '../support/stackInfo';

async function scrape(): Promise<Map<string, number>> {
  const response = await fetch(stackInfo().serverURL.replace(/\/parse$/, '/metrics'));
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/text\/plain/);
  const values = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) values.set(match[1], Number(match[2]));
  }
  return values;
}

test('/metrics values change as a batch runs', async () => {
  const before = await scrape();
  for (const name of ['batch_memory_batches{status="completed"}', 'batch_memory_items_processed_total', 'process_resident_memory_bytes']) expect(before.has(name)).toBe(true);
  const { sessionToken } = await newUser();
  const submitted = await postJson('/memory/batch', { memories: [...memories(60), { content: 'no', metadata: { test_reject: 'refused' } }] }, { token: sessionToken });
  expect(submitted.status).toBe(207);
  const after = await waitFor('the metrics to count the batch', async () => {
    const now = await scrape();
    return (now.get('batch_memory_batch_duration_seconds_count{status="completed"}') ?? 0) > (before.get('batch_memory_batch_duration_seconds_count{status="completed"}') ?? 0) ? now : undefined;
  });
  const grew = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  // Other test files run batches at the same time: at least this batch's share.
  expect(grew('batch_memory_items_processed_total')).toBeGreaterThanOrEqual(60);
  expect(grew('batch_memory_items_failed_total')).toBeGreaterThanOrEqual(1);
  expect(grew('batch_memory_batches_submitted_total')).toBeGreaterThanOrEqual(1);
  expect(grew('batch_memory_batches_finished_total{status="completed"}')).toBeGreaterThanOrEqual(1);
  expect(grew('batch_memory_batches{status="completed"}')).toBeGreaterThanOrEqual(1);
  expect(grew('batch_memory_batch_size_memories_count')).toBeGreaterThanOrEqual(1);
  expect(grew('batch_memory_batch_size_memories_bucket{le="100"}')).toBeGreaterThanOrEqual(1);
});

test('the worker serves Temporal worker metrics for Prometheus', async () => {
  // Two parts of the test stack (100 memories each): activities on the task queue, not the local part of a small batch.
  const { sessionToken } = await newUser();
  expect((await postJson('/memory/batch', { memories: memories(150) }, { token: sessionToken })).status).toBe(200);
  const response = await fetch(`http://127.0.0.1:${stackInfo().env.WORKER_METRICS_PORT}/metrics`);
  expect(response.status).toBe(200);
  const text = await response.text();
  expect(text).toMatch(/^temporal_worker_task_slots_available\{.*task_queue="batch-memory-test".*\} \d+/m);
  expect(text).toMatch(/^temporal_activity_execution_latency_count\{.*\} [1-9]/m);
});
