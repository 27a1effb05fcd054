/** The measured scenarios, each against the runner's own stack through the product's REST route and client. */
import type { Client } from '@temporalio/client';
import { BatchMemoryClient, isFinished } from '../client';
import type { MemoryItem, MemoryProcessingResult, StreamProcessing } from '../schema/memory';
import type { stackApi } from '../test/reliability/stackApi';
import type { TestStackInfo } from '../test/support/stackInfo';
import { batchWorkflowRuns, historyFigures } from '../test/support/workflowHistory';
import { type MeasuredProcess, RssSampler, cpuSeconds, WARM_UP_BATCHES, WARM_UP_MEMORIES, mean, median, memoriesFrom, ndjsonLines, percentile, since } from './measure';
import { type ClaimCheckRow, type ConcurrentResult, type ScalingRow, type SequenceResult, type SingleResult, formatNumber as f } from './report';

export interface BenchContext {
  info: TestStackInfo;
  api: ReturnType<typeof stackApi>;
  temporal: Client;
  pids: Record<MeasuredProcess, number>;
  /** Prints one measured figure, or what is being measured, as the run goes. */
  say(line: string): void;
}

export interface BenchUser {
  id: string;
  token: string;
  client: BatchMemoryClient;
}

export async function benchUser(context: BenchContext, prefix: string): Promise<BenchUser> {
  const { id, token } = await context.api.signUp(prefix);
  return { id, token, client: new BatchMemoryClient({ serverUrl: context.info.serverURL, appId: context.info.appId, auth: { sessionToken: token } }) };
}

/**
 * Submits a batch and waits for it, answering once every per-item result is in hand: from the answer
 * itself when the batch finished within the server's wait, otherwise by following it and reading its results.
 */
export async function submitUntilResults(client: BatchMemoryClient, memories: MemoryItem[], namespace: string): Promise<{ ms: number; succeeded: boolean }> {
  const started = performance.now();
  const { batch } = await client.add({ memories, namespace }, { wait: true });
  let status = batch.status;
  let results: MemoryProcessingResult[] = batch.results;
  if (!isFinished(batch) || results.length < batch.total) {
    status = (await client.wait(batch.batch_id)).status;
    results = [];
    for await (const result of client.results(batch.batch_id)) results.push(result);
  }
  const ms = since(started);
  return { ms, succeeded: status === 'completed' && results.length === memories.length && results.every((result) => result.success) };
}

/** A few batches first, so that connections, caches and the JIT are warm before anything is timed. */
export async function warmUp(context: BenchContext): Promise<void> {
  const user = await benchUser(context, 'bench-warm-up');
  const memories = memoriesFrom(0, WARM_UP_MEMORIES);
  const outcomes = [];
  for (let batch = 0; batch < WARM_UP_BATCHES; batch++) outcomes.push(await submitUntilResults(user.client, memories, 'bench-warm-up'));
  outcomes.push(...(await Promise.all(Array.from({ length: WARM_UP_BATCHES }, () => submitUntilResults(user.client, memories, 'bench-warm-up')))));
  if (!outcomes.every((outcome) => outcome.succeeded)) throw new Error('a warm-up batch did not complete');
}

/** Scenario 1 of docs/requirements.md §7: concurrent batches from as many users; latency from submit to full results. */
export async function concurrentBatches(context: BenchContext, batches: number, memoriesPerBatch: number): Promise<ConcurrentResult> {
  const users = await Promise.all(Array.from({ length: batches }, (_, i) => benchUser(context, `bench-concurrent-${i}`)));
  const memories = memoriesFrom(0, memoriesPerBatch);
  const cpuBefore = { server: cpuSeconds(context.pids.server), worker: cpuSeconds(context.pids.worker) };
  const outcomes = await Promise.all(users.map((user) => submitUntilResults(user.client, memories, 'bench-concurrent')));
  const cpuSpent = { server: cpuSeconds(context.pids.server) - cpuBefore.server, worker: cpuSeconds(context.pids.worker) - cpuBefore.worker };
  const latencies = outcomes.map((outcome) => outcome.ms);
  const result: ConcurrentResult = {
    batches,
    memoriesPerBatch,
    successRate: (100 * outcomes.filter((outcome) => outcome.succeeded).length) / batches,
    averageMs: mean(latencies),
    p95Ms: percentile(latencies, 95),
    cpuSeconds: cpuSpent,
  };
  context.say(`1. ${batches} concurrent batches of ${memoriesPerBatch}: success ${result.successRate} %, average ${f(result.averageMs)} ms, p95 ${f(result.p95Ms)} ms`);
  return result;
}

/** Scenario 2 of docs/requirements.md §7: one batch, its time and the peak RSS of the Parse Server and worker processes. */
export async function singleBatch(context: BenchContext, memories: number): Promise<SingleResult> {
  const user = await benchUser(context, 'bench-single');
  const sampler = new RssSampler(context.pids).start();
  const { ms, succeeded } = await submitUntilResults(user.client, memoriesFrom(0, memories), 'bench-single');
  const rss = sampler.stop();
  if (!succeeded) throw new Error(`the batch of ${memories} memories did not complete`);
  const result: SingleResult = { memories, ms, serverPeakMb: rss.peak.server, workerPeakMb: rss.peak.worker, peakSumMb: rss.peakSum };
  context.say(`2. one batch of ${memories}: ${f(ms)} ms; peak RSS Parse Server ${f(rss.peak.server)} MB, worker ${f(rss.peak.worker)} MB, together ${f(rss.peakSum)} MB`);
  return result;
}

/** Scenario 3 of docs/requirements.md §7, compressed: batches back to back; RSS of the first batches against the last ones. */
export async function backToBack(context: BenchContext, batches: number, memoriesPerBatch: number): Promise<SequenceResult> {
  const user = await benchUser(context, 'bench-sequence');
  const memories = memoriesFrom(0, memoriesPerBatch);
  const meanRss: number[] = [];
  let succeeded = 0;
  for (let batch = 0; batch < batches; batch++) {
    const sampler = new RssSampler(context.pids).start();
    if ((await submitUntilResults(user.client, memories, 'bench-sequence')).succeeded) succeeded++;
    meanRss.push(sampler.stop().meanSum);
  }
  const windowBatches = Math.min(10, Math.floor(batches / 2));
  const firstWindowMb = mean(meanRss.slice(0, windowBatches));
  const lastWindowMb = mean(meanRss.slice(-windowBatches));
  const result: SequenceResult = {
    batches,
    memoriesPerBatch,
    successRate: (100 * succeeded) / batches,
    windowBatches,
    firstWindowMb,
    lastWindowMb,
    driftPercent: (100 * (lastWindowMb - firstWindowMb)) / firstWindowMb,
  };
  context.say(
    `3. ${batches} batches of ${memoriesPerBatch} back to back: success ${result.successRate} %; mean RSS over the first and the last ${windowBatches} of them ${f(firstWindowMb)} MB and ${f(lastWindowMb)} MB, drift ${f(result.driftPercent)} %`,
  );
  return result;
}

/**
 * Claim-check overhead: storing a batch (submit without waiting, until the 202 answer) and reading it
 * back part by part through getMemoryBatchData; the median of a few repeats. Each batch finishes before
 * its memories are read back and before the next one is sent, so no processing runs alongside.
 */
export async function claimCheck(context: BenchContext, memories: number, repeats: number): Promise<ClaimCheckRow> {
  const user = await benchUser(context, `bench-claim-check-${memories}`);
  const items = memoriesFrom(0, memories);
  const storeMs: number[] = [];
  const fetchMs: number[] = [];
  let parts = 0;
  for (let repeat = 0; repeat < repeats; repeat++) {
    let started = performance.now();
    const { httpStatus, batch } = await user.client.add({ memories: items, namespace: 'bench-claim-check' }, { wait: false });
    storeMs.push(since(started));
    if (httpStatus !== 202) throw new Error(`a batch submitted without waiting answered ${httpStatus}, not 202`);
    await user.client.wait(batch.batch_id);

    started = performance.now();
    let fetched = 0;
    for (let part = 0, partCount = 1; part < partCount; part++) {
      const answer = await context.api.call('/parse/functions/getMemoryBatchData', { body: { batch_id: batch.batch_id, part }, token: user.token });
      if (answer.status !== 200) throw new Error(`getMemoryBatchData answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      partCount = answer.body.result.parts;
      fetched += answer.body.result.memories.length;
      parts = partCount;
    }
    fetchMs.push(since(started));
    if (fetched !== memories) throw new Error(`getMemoryBatchData gave back ${fetched} of ${memories} memories`);
  }
  const row: ClaimCheckRow = { memories, parts, repeats, storeMs: median(storeMs), fetchMs: median(fetchMs) };
  context.say(`4. claim-check of ${memories} memories (${parts} part${parts === 1 ? '' : 's'}, median of ${repeats}): store ${f(row.storeMs)} ms, fetch back ${f(row.fetchMs)} ms`);
  return row;
}

/**
 * Scaling: one gzip NDJSON upload through the client, from submit to completed; then its Temporal history. Processed
 * while uploading unless told otherwise, so that the upload and the processing overlap.
 */
export async function scaling(context: BenchContext, user: BenchUser, memories: number, process: StreamProcessing = 'while_uploading'): Promise<ScalingRow> {
  const sampler = new RssSampler(context.pids).start();
  const started = Date.now();
  const { batch } = await user.client.addNdjson(ndjsonLines(memories), { namespace: `bench-scaling-${memories}`, process }, { wait: false });
  const stored = Date.now();
  const uploadRss = sampler.stop();
  const processingSampler = new RssSampler(context.pids).start();
  const final = await user.client.wait(batch.batch_id);
  const processingRss = processingSampler.stop();
  if (final.status !== 'completed' || final.processed !== memories || final.failed !== 0 || !final.completed_at) {
    throw new Error(`the ${memories}-memory upload ended ${final.status} with ${final.processed} processed and ${final.failed} failed`);
  }
  // The server's completion time, rather than when the events stream reported it (up to half a second later).
  const seconds = (Date.parse(final.completed_at) - started) / 1000;
  const history = historyFigures(await batchWorkflowRuns(context.temporal, batch.batch_id));
  const row: ScalingRow = {
    memories,
    process,
    seconds,
    perSecond: memories / seconds,
    uploadSeconds: (stored - started) / 1000,
    processingSeconds: (Date.parse(final.completed_at) - stored) / 1000,
    serverPeakMb: Math.max(uploadRss.peak.server, processingRss.peak.server),
    workerPeakMb: Math.max(uploadRss.peak.worker, processingRss.peak.worker),
    serverUploadPeakMb: uploadRss.peak.server,
    largestPayloadBytes: history.largestPayload,
    longestHistoryEvents: history.longestHistory,
    runs: history.runs,
  };
  context.say(
    `5. ${memories} memories as gzip NDJSON, processed ${process}: ${f(seconds)} s (upload and store ${f(row.uploadSeconds)} s, then processing ${f(row.processingSeconds)} s), ${f(row.perSecond)} memories/s; peak RSS worker ${f(row.workerPeakMb)} MB, Parse Server ${f(row.serverPeakMb)} MB (${f(row.serverUploadPeakMb)} MB during the upload); ` +
      `${row.runs} workflow run${row.runs === 1 ? '' : 's'}, longest history ${row.longestHistoryEvents} events, largest payload ${row.largestPayloadBytes} bytes`,
  );
  return row;
}
