/** Helpers for test files: the Parse SDK and a Temporal client pointed at the shared stack. */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import Parse from 'parse/node';
import { waitFor } from '../../scripts/processes';
import type { BatchMemoryResponse, MemoryItem } from '../../schema/memory';
import { fileStorage } from './fileStorage';
import { stackInfo } from './stackInfo';
import { gateFile } from './testProcessor';
import { batchWorkflowRuns, type HistoryEvent } from './workflowHistory';

export { waitFor };
export const master = { useMasterKey: true };

let initialised = false;
export function parse(): typeof Parse {
  if (!initialised) {
    const info = stackInfo();
    Parse.initialize(info.appId);
    Parse.masterKey = info.masterKey;
    Parse.serverURL = info.serverURL;
    initialised = true;
  }
  return Parse;
}

export interface TestUser {
  user: Parse.User;
  sessionToken: string;
  id: string;
}

export async function newUser(prefix = 'user'): Promise<TestUser> {
  const P = parse();
  const user = new P.User();
  user.set({ username: `${prefix}-${randomUUID()}`, password: 'test-password-123' });
  await user.signUp();
  const sessionToken = user.getSessionToken();
  if (!sessionToken || !user.id) throw new Error('sign-up gave no session');
  return { user, sessionToken, id: user.id };
}

/** What a user has stored: their batches and memories, as the master key counts them. */
export async function storedBy(owner: TestUser): Promise<{ batches: number; memories: number }> {
  const P = parse();
  const [batches, stored] = await Promise.all([new P.Query('BatchMemoryRequest').equalTo('user', owner.user).count(master), new P.Query('Memory').equalTo('user', owner.user).count(master)]);
  return { batches, memories: stored };
}

export async function addMemoryBatch(sessionToken: string, params: Record<string, unknown>): Promise<BatchMemoryResponse> {
  return parse().Cloud.run('addMemoryBatch', params, { sessionToken }) as Promise<BatchMemoryResponse>;
}

/** Plausible English memories of about `bytes` bytes each. */
export function memories(count: number, bytes = 200, extra: (index: number) => Partial<MemoryItem> = () => ({})): MemoryItem[] {
  return Array.from({ length: count }, (_, index) => ({ content: englishText(bytes, index), metadata: { index, kind: 'note' }, ...extra(index) }));
}

const WORDS =
  'the user mentioned that their team prefers morning meetings and wants summaries sent by email after each call about the project roadmap budget review customer feedback release plan design notes and travel schedule for next quarter'.split(
    ' ',
  );

export function englishText(bytes: number, seed: number): string {
  const parts: string[] = [`Memory ${seed}:`];
  let length = parts[0].length;
  let state = seed * 2654435761;
  while (length < bytes) {
    state = (state * 1103515245 + 12345) >>> 0;
    const word = WORDS[state % WORDS.length];
    parts.push(word);
    length += word.length + 1;
  }
  return `${parts.join(' ')}.`;
}

export async function countMemories(batchId: string): Promise<number> {
  const P = parse();
  const batch = P.Object.fromJSON({ className: 'BatchMemoryRequest', objectId: batchId });
  return new P.Query('Memory').equalTo('batch', batch).count(master);
}

/** Memory rows of a batch that share a batch index with another row (must always be 0). */
export async function duplicateMemories(batchId: string): Promise<number> {
  const P = parse();
  const batch = P.Object.fromJSON({ className: 'BatchMemoryRequest', objectId: batchId });
  const seen = new Set<number>();
  let duplicates = 0;
  let after = -1;
  for (;;) {
    const page = await new P.Query('Memory').equalTo('batch', batch).greaterThan('batchIndex', after).ascending('batchIndex').select('batchIndex').limit(1000).find(master);
    for (const row of page) {
      const index = row.get('batchIndex') as number;
      if (seen.has(index)) duplicates++;
      seen.add(index);
    }
    if (page.length < 1000) return duplicates;
    after = page[page.length - 1].get('batchIndex') as number;
  }
}

export async function getBatch(batchId: string): Promise<Parse.Object> {
  return new (parse().Query)('BatchMemoryRequest').get(batchId, master);
}

let client: Promise<Client> | undefined;
export function temporal(): Promise<Client> {
  client ??= Connection.connect({ address: stackInfo().temporalAddress }).then((connection) => new Client({ connection, namespace: stackInfo().namespace }));
  return client;
}

export async function closeTemporal(): Promise<void> {
  const c = await client;
  client = undefined;
  await c?.connection.close();
}

async function everyRow(className: string, fields: string[]): Promise<Parse.Object[]> {
  const P = parse();
  const rows: Parse.Object[] = [];
  let after = new Date(0);
  for (;;) {
    const page = await new P.Query(className)
      .greaterThan('createdAt', after)
      .ascending('createdAt')
      .select(...fields, 'createdAt')
      .limit(1000)
      .find(master);
    rows.push(...page);
    if (page.length < 1000) return rows;
    after = page[page.length - 1].createdAt as Date;
  }
}

/** Stored batch files that no BatchMemoryRequest references (waits out uploads of requests still being created). */
export async function orphanFiles(timeoutMs = 30_000): Promise<string[]> {
  const find = async () => {
    const stored = (await fileStorage(stackInfo().env).names()).filter((f) => f.includes('bmr-'));
    const referenced = new Set<string>();
    const partsKeys = new Set<string>();
    for (const batch of await everyRow('BatchMemoryRequest', ['partsKey', 'resultsFile'])) {
      partsKeys.add(batch.get('partsKey'));
      const results = batch.get('resultsFile') as Parse.File | undefined;
      if (results) referenced.add(results.name());
    }
    for (const part of await everyRow('BatchMemoryPart', ['partsKey', 'name'])) {
      if (partsKeys.has(part.get('partsKey'))) referenced.add(part.get('name'));
    }
    return stored.filter((name) => !referenced.has(name));
  };
  try {
    return await waitFor('no orphan batch files', async () => ((await find()).length === 0 ? [] : undefined), timeoutMs, 500);
  } catch {
    return find();
  }
}

/** Raw HTTP to Parse Server, for what the SDK hides (status codes, file URLs). */
export async function http(path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
  const info = stackInfo();
  const url = path.startsWith('http') ? path : `${info.serverURL}${path}`;
  return fetch(url, { ...init, headers: { 'X-Parse-Application-Id': info.appId, ...init.headers } });
}

/** One call of the test processor's `prepare` (items with `test_record: true`), in the order the worker made them. */
export interface PreparedItem {
  /** Index of the memory in its batch. */
  i: number;
  /** The activity attempt that prepared it. */
  a: number;
}

export interface Gate {
  /** Metadata that makes an item wait for this gate (see testProcessor.ts). */
  hold: { test_hold: string };
  /** Lets every item held by this gate go on; opening twice is harmless. */
  open(): void;
}

/** A new, closed gate of the worker of the stack with this DATA_DIR. */
export function newGate(dataDir = stackInfo().env.DATA_DIR): Gate {
  const name = randomUUID();
  const file = gateFile(dataDir, name);
  return {
    hold: { test_hold: name },
    open: () => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, '');
    },
  };
}

/**
 * A batch that runs until it is cancelled: in each part of the test stack (BATCH_PART_MAX_ITEMS 100) the first
 * write (BATCH_WRITE_MAX_ITEMS 30) is written at once and the other memories wait for `gate`. A cancel that
 * reaches the running activities (at their next heartbeat) lets them go too: they stop at a write boundary in
 * the middle of their parts.
 */
export function heldMemories(count: number, gate: Gate): MemoryItem[] {
  return memories(count, 300, (index) => ({ metadata: { index, kind: 'note', ...(index % 100 < 30 ? {} : gate.hold) } }));
}

/** What the worker of the stack with this DATA_DIR prepared for a batch so far (see testProcessor.ts). */
export function preparedItems(batchId: string, dataDir = stackInfo().env.DATA_DIR): PreparedItem[] {
  const file = path.join(dataDir, 'prepared', `${batchId}.jsonl`);
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as PreparedItem);
}

/** Indexes prepared more than once, ascending. */
export function repeatedIndexes(prepared: PreparedItem[]): number[] {
  const seen = new Map<number, number>();
  for (const { i } of prepared) seen.set(i, (seen.get(i) ?? 0) + 1);
  return [...seen]
    .filter(([, times]) => times > 1)
    .map(([i]) => i)
    .sort((a, b) => a - b);
}

/**
 * Waits until a batch's workflow has closed and its history (every run) shows each activity it scheduled
 * closed too (completed, failed, timed out or cancelled): no part can write any more. Answers how many
 * activities ended cancelled, that is were stopped in the middle of a part.
 */
export async function untilActivitiesClosed(batchId: string, timeoutMs = 120_000): Promise<{ activities: number; cancelled: number }> {
  const client = await temporal();
  return waitFor(
    `every activity of batch ${batchId} to be closed in its workflow history`,
    async () => {
      const runs = await batchWorkflowRuns(client, batchId);
      if (!isClosed(runs.at(-1)?.events.at(-1))) return undefined;
      // Event ids count within a run: match each run's activities with that run's closing events.
      const open = runs.flatMap(({ events }) => {
        const closed = new Set(
          events
            .map((e) => e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes)
            .filter((attributes) => attributes)
            .map((attributes) => Number(attributes?.scheduledEventId)),
        );
        return events.filter((e) => e.activityTaskScheduledEventAttributes && !closed.has(Number(e.eventId)));
      });
      if (open.length) return undefined;
      const events = runs.flatMap((run) => run.events);
      return { activities: events.filter((e) => e.activityTaskScheduledEventAttributes).length, cancelled: events.filter((e) => e.activityTaskCanceledEventAttributes).length };
    },
    timeoutMs,
    250,
  );
}

function isClosed(event: HistoryEvent | undefined): boolean {
  return Boolean(
    event &&
    (event.workflowExecutionCompletedEventAttributes ||
      event.workflowExecutionFailedEventAttributes ||
      event.workflowExecutionCanceledEventAttributes ||
      event.workflowExecutionTerminatedEventAttributes ||
      event.workflowExecutionTimedOutEventAttributes),
  );
}
