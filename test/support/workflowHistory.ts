/**
 * The Temporal history of a batch's workflow across its continue-as-new runs, and the size of every
 * payload in it: what the payload-limit test asserts on and the benchmark reports.
 */
import type { Client } from '@temporalio/client';
import type { temporal as TemporalApi } from '@temporalio/proto';
import { workflowIdFor } from '../../schema/workflow';

export type HistoryEvent = TemporalApi.api.history.v1.IHistoryEvent;

export interface WorkflowRun {
  runId: string;
  events: HistoryEvent[];
}

/**
 * Every run of a batch's workflow, first to last: from the first run (named in any run's start event)
 * along each run's continued-as-new event, so no run is missed while visibility catches up.
 */
export async function batchWorkflowRuns(client: Client, batchId: string): Promise<WorkflowRun[]> {
  const workflowId = workflowIdFor(batchId);
  const latest = await client.workflow.getHandle(workflowId).fetchHistory();
  const firstRunId = latest.events?.[0]?.workflowExecutionStartedEventAttributes?.firstExecutionRunId;
  if (!firstRunId) throw new Error(`the history of ${workflowId} names no first run`);
  const runs: WorkflowRun[] = [];
  for (let runId: string | null | undefined = firstRunId; runId;) {
    const events: HistoryEvent[] = (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
    runs.push({ runId, events });
    runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
  }
  return runs;
}

export interface FoundPayload {
  data: Uint8Array;
  /** The payload's `encoding` metadata (`json/plain`, `binary/null`, …). */
  encoding: string;
}

/** Every payload anywhere in an event or answer (inputs, results, failures, heartbeat details, memo, search attributes). */
export function payloadsIn(value: unknown, found: FoundPayload[] = []): FoundPayload[] {
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return found;
  const record = value as Record<string, unknown>;
  if (record.data instanceof Uint8Array && 'metadata' in record) {
    const encoding = (record.metadata as Record<string, Uint8Array> | null)?.encoding;
    found.push({ data: record.data, encoding: encoding ? Buffer.from(encoding).toString('utf8') : '' });
  }
  for (const child of Object.values(record)) payloadsIn(child, found);
  return found;
}

/** Every string an event or answer holds, payload bytes decoded: what a search for leaked batch data reads. */
export function textsIn(value: unknown, texts: string[] = []): string[] {
  if (typeof value === 'string') texts.push(value);
  else if (value instanceof Uint8Array) texts.push(Buffer.from(value).toString('utf8'));
  else if (value !== null && typeof value === 'object') for (const child of Object.values(value)) textsIn(child, texts);
  return texts;
}

export interface HistoryFigures {
  runs: number;
  /** Events in the longest run's history. */
  longestHistory: number;
  /** Bytes of the largest payload in any run. */
  largestPayload: number;
  payloads: number;
}

export function historyFigures(runs: WorkflowRun[]): HistoryFigures {
  const sizes = runs.flatMap((run) => run.events.flatMap((event) => payloadsIn(event).map((payload) => payload.data.byteLength)));
  return {
    runs: runs.length,
    longestHistory: Math.max(...runs.map((run) => run.events.length)),
    largestPayload: Math.max(...sizes),
    payloads: sizes.length,
  };
}
