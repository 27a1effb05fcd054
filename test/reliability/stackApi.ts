/** Raw HTTP against a private stack (the Parse SDK of a test file points at the shared one), and the scenario record. */
import fs from 'node:fs';
import http from 'node:http';
import { fileStorage } from '../support/fileStorage';
import type { AttackRecord, ScenarioRecord } from '../../scripts/reliabilityReport';
import type { TestStackInfo } from '../support/stackInfo';

export interface Answer {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  token?: string;
  master?: boolean;
  headers?: Record<string, string>;
  raw?: BodyInit;
}

/**
 * 5xx answers any stackApi of this test file has received, polls included. 502 is left out: a proxy's answer
 * for an instance a fault test killed on purpose, which the test counts itself where it matters.
 */
let serverErrors = 0;

/** From now on: a scenario counts the 5xx it saw instead of writing 0. */
export function countServerErrors(): () => number {
  const before = serverErrors;
  return () => serverErrors - before;
}

export function stackApi(info: TestStackInfo) {
  const origin = info.serverURL.replace(/\/parse$/, '');
  const pointer = (batchId: string) => ({ __type: 'Pointer', className: 'BatchMemoryRequest', objectId: batchId });

  async function call(route: string, options: CallOptions = {}): Promise<Answer> {
    const response = await fetch(`${origin}${route}`, {
      method: options.method ?? (options.body !== undefined || options.raw !== undefined ? 'POST' : 'GET'),
      headers: {
        'X-Parse-Application-Id': info.appId,
        ...(options.raw === undefined ? { 'Content-Type': 'application/json' } : {}),
        ...(options.token ? { 'X-Parse-Session-Token': options.token } : {}),
        ...(options.master ? { 'X-Parse-Master-Key': info.masterKey } : {}),
        ...options.headers,
      },
      ...(options.raw !== undefined ? { body: options.raw } : options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    if (response.status >= 500 && response.status !== 502) serverErrors++;
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body };
  }

  async function count(className: string, where: object = {}): Promise<number> {
    const answer = await call(`/parse/classes/${className}?where=${encodeURIComponent(JSON.stringify(where))}&count=1&limit=0`, { master: true });
    if (answer.status !== 200) throw new Error(`count of ${className} answered ${answer.status}`);
    return answer.body.count as number;
  }

  return {
    call,
    count,
    async signUp(prefix: string): Promise<{ id: string; token: string }> {
      const answer = await call('/parse/users', { body: { username: `${prefix}-${Math.random().toString(36).slice(2)}`, password: 'test-password-123' } });
      if (answer.status !== 201) throw new Error(`sign-up answered ${answer.status}`);
      return { id: answer.body.objectId, token: answer.body.sessionToken };
    },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    async batch(batchId: string): Promise<Record<string, any>> {
      return (await call(`/parse/classes/BatchMemoryRequest/${batchId}`, { master: true })).body;
    },
    /** Memory rows of a batch, and how many share a batch index with another (must be 0). */
    async memoryRows(batchId: string): Promise<{ rows: number; duplicates: number }> {
      const where = encodeURIComponent(JSON.stringify({ batch: pointer(batchId) }));
      const answer = await call(`/parse/classes/Memory?where=${where}&keys=batchIndex&limit=1000000`, { master: true });
      const indexes = (answer.body.results as { batchIndex: number }[]).map((row) => row.batchIndex);
      return { rows: indexes.length, duplicates: indexes.length - new Set(indexes).size };
    },
    async chunkRows(batchId: string): Promise<{ part: number; first: number; attempt: number }[]> {
      const where = encodeURIComponent(JSON.stringify({ batch: pointer(batchId) }));
      return (await call(`/parse/classes/BatchMemoryChunk?where=${where}&keys=part,first,attempt&limit=1000000`, { master: true })).body.results;
    },
    /** Stored batch files, on disk or in GridFS (what the master key could download). */
    async storedFiles(): Promise<string[]> {
      return (await fileStorage(info.env).names()).filter((name) => name.includes('bmr-'));
    },
  };
}

/** Appends one row of the reliability table (printed at the end of the run, and kept in RELIABILITY.md). */
export function recordScenario(record: ScenarioRecord): void {
  const file = process.env.RELIABILITY_RESULTS;
  if (file) fs.appendFileSync(file, `${JSON.stringify(record)}\n`);
}

/**
 * Appends one row of the attacks table: `answers` are the statuses (or outcomes) the test counted,
 * `refused` whether every request was refused with nothing stored, delivered or leaked.
 */
export function recordAttack(record: AttackRecord): void {
  const file = process.env.RELIABILITY_RESULTS;
  if (file) fs.appendFileSync(file, `${JSON.stringify(record)}\n`);
}

/**
 * Runs an attack test's `checks` and records its row however they end: refused only when every check held.
 * `row` is read at the end, so that it counts every answer the checks saw.
 */
export async function recordAttackChecked(row: () => Omit<AttackRecord, 'refused'>, checks: () => Promise<void>): Promise<void> {
  let everyCheckHeld = false;
  try {
    await checks();
    everyCheckHeld = true;
  } finally {
    recordAttack({ ...row(), refused: everyCheckHeld });
  }
}

/** Counts answers by status, for recordAttack. */
export function tally(statuses: (number | string)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const status of statuses) counts[String(status)] = (counts[String(status)] ?? 0) + 1;
  return counts;
}

/** An answer as it came over the wire: headers, text, the JSON body when it is JSON, and whether the connection was one an earlier answer left open. */
export interface WireAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  reusedSocket: boolean;
}

export interface WireOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Source address (a loopback address: per-address limits and PARSE_MASTER_KEY_IPS see it). */
  from?: string;
  agent?: http.Agent;
}

/** One request with node:http, for what fetch cannot do: choose the source address and the connection. */
export function requestFrom(url: string, options: WireOptions = {}): Promise<WireAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: options.method ?? (options.body === undefined ? 'GET' : 'POST'), headers: options.headers, localAddress: options.from, agent: options.agent },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text, body, reusedSocket: request.reusedSocket });
        });
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}
