/**
 * Invariants 1 and 2: nothing proportional to the batch crosses Temporal, and history stays bounded.
 * The test stack's dev server refuses payloads over 64 KiB; beyond that, no payload may carry any of a
 * memory's text (every memory carries a marker that is searched for in everything Temporal holds), and
 * the largest payload stays near its measured size, far below one memory.
 */
import { randomUUID } from 'node:crypto';
import { INLINE_RESULTS_MAX, TERMINAL_STATUSES, type BatchStatus } from '../../schema/memory';
import { PROGRESS_QUERY, workflowIdFor } from '../../schema/workflow';
import { addMemoryBatch, closeTemporal, countMemories, duplicateMemories, getBatch, memories, newUser, parse, temporal, waitFor } from '../support/helpers';
import { PAYLOAD_LIMIT_BYTES, stackInfo } from '../support/stackInfo';
import { rest } from '../support/rest';
import { type FoundPayload, batchWorkflowRuns, historyFigures, payloadsIn, textsIn } from '../support/workflowHistory';

afterAll(closeTemporal);

/**
 * The largest payload this batch puts on Temporal, measured: 317 bytes, the manifest beginBatch returns
 * (recorded in history as its local-activity marker): parts key, part count, the owner's ids and the
 * workflow settings. The next largest are a part activity's input (177 bytes) and a local-activity
 * marker's own details (~210 bytes); the docs' earlier 149 bytes predate the settings and owner in them.
 * All are ids and counters of fixed length, so 20% over the measure bounds them; one memory of this test
 * is over 1 KB.
 */
const LARGEST_PAYLOAD_BOUND = 384;
/** Encodings whose bytes are text, so that searching them for a memory's text means something. */
const TEXT_ENCODINGS = ['json/plain', 'binary/null'];

test('a 10,000-memory batch of ~1 KB memories completes under a 64 KiB payload limit; no payload holds any memory text; history bounded', async () => {
  const count = Number(stackInfo().env.MAX_BATCH_SIZE);
  expect(count).toBe(10_000);
  const { sessionToken } = await newUser();
  // A marker in every part of every memory: content (start and end), metadata, source and tags.
  const marker = `memory-text-${randomUUID()}`;
  const items = memories(count, 1000).map((item, index) => ({
    ...item,
    content: `${marker} ${index}: ${item.content} ${marker}`,
    metadata: { ...item.metadata, marker },
    source: marker,
    tags: [marker],
  }));
  const rawBytes = Buffer.byteLength(JSON.stringify(items));
  expect(rawBytes).toBeGreaterThan(10_000_000);

  const accepted = await addMemoryBatch(sessionToken, { memories: items, namespace: 'large', wait: false });
  const client = await temporal();
  const handle = client.workflow.getHandle(workflowIdFor(accepted.batch_id));
  // Heartbeat details are not kept in history: they are read from the running part activities until the batch ends.
  const heartbeats: unknown[] = [];
  await waitFor(
    `batch ${accepted.batch_id} to finish`,
    async () => {
      const description = await handle.describe().catch(() => undefined);
      for (const activity of description?.raw.pendingActivities ?? []) if (activity.heartbeatDetails) heartbeats.push(activity.heartbeatDetails);
      return TERMINAL_STATUSES.includes((await getBatch(accepted.batch_id)).get('status') as BatchStatus) || undefined;
    },
    600_000,
    100,
  );
  const response = await parse().Cloud.run('getMemoryBatch', { batch_id: accepted.batch_id }, { sessionToken });
  expect(response).toMatchObject({ success: true, status: 'completed', total: count, processed: count, failed: 0 });
  // The answer carries the first INLINE_RESULTS_MAX results and points to the download, which has them all.
  expect({ inline: response.results.length, results_url: response.results_url }).toEqual({ inline: INLINE_RESULTS_MAX, results_url: `/api/v1/memory/batch/${accepted.batch_id}/results` });
  const download = await rest(`/memory/batch/${accepted.batch_id}/results`, { token: sessionToken });
  expect(download.text.trim().split('\n')).toHaveLength(count);
  expect(await countMemories(accepted.batch_id)).toBe(count);
  expect(await duplicateMemories(accepted.batch_id)).toBe(0);
  const batch = await getBatch(accepted.batch_id);
  expect([batch.get('processedMemories'), batch.get('failedMemories')]).toEqual([count, 0]);
  const progress = await handle.query(PROGRESS_QUERY);

  const runs = await batchWorkflowRuns(client, accepted.batch_id);
  const partsPerRun = Number(stackInfo().env.BATCH_PARTS_PER_RUN);
  const partCount = batch.get('partCount') as number;
  expect(runs.length).toBe(Math.ceil(partCount / partsPerRun));
  const { largestPayload: largestInHistory, longestHistory: longest, payloads } = historyFigures(runs);
  const heartbeatPayloads: FoundPayload[] = heartbeats.flatMap((details) => payloadsIn(details));
  const queryBytes = Buffer.byteLength(JSON.stringify(progress));
  const largest = Math.max(largestInHistory, queryBytes, ...heartbeatPayloads.map((payload) => payload.data.byteLength));
  process.stdout.write(
    `10,000 memories (${rawBytes} raw bytes): ${runs.length} runs, longest history ${longest} events, largest payload ${largest} bytes ` +
      `(history ${largestInHistory} of ${payloads}, ${heartbeatPayloads.length} heartbeat details, progress query ${queryBytes})\n`,
  );

  // Nothing of any memory anywhere: event payloads and fields (inputs, results, failures, memo, search
  // attributes, signals), heartbeat details, the progress query's answer.
  const leaks = [
    ...runs.flatMap((run) => run.events.filter((event) => textsIn(event).some((text) => text.includes(marker))).map((event) => `run ${run.runId} event ${event.eventId} (type ${event.eventType})`)),
    ...heartbeats.filter((details) => textsIn(details).some((text) => text.includes(marker))).map(() => 'heartbeat details'),
    ...(JSON.stringify(progress).includes(marker) ? ['progress query'] : []),
  ];
  expect(leaks).toEqual([]);
  const encodings = new Set([...runs.flatMap((run) => run.events.flatMap((event) => payloadsIn(event))), ...heartbeatPayloads].map((payload) => payload.encoding));
  expect([...encodings].filter((encoding) => !TEXT_ENCODINGS.includes(encoding))).toEqual([]);
  // The channels searched were really there: part activities heartbeat, and the query answers.
  expect(heartbeatPayloads.length).toBeGreaterThan(0);
  expect(progress).toMatchObject({ batchId: accepted.batch_id, processed: count });

  expect(largest).toBeLessThanOrEqual(LARGEST_PAYLOAD_BOUND);
  expect(largest).toBeLessThan(PAYLOAD_LIMIT_BYTES);
  // Per run: a few events per part plus a fixed overhead, whatever the batch size.
  expect(longest).toBeLessThanOrEqual(partsPerRun * 7 + 40);
  expect(runs.every((run) => run.events.length > 0)).toBe(true);
});
