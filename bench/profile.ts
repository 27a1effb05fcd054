/**
 * Where the time of one large upload goes: V8 CPU profiles (`--cpu-prof`) of Parse Server and the worker,
 * their samples summed by what the code is (by script URL and function), and the database's own view from
 * pg_stat_statements (which statements, how many, how long).
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';

/** The flags that make the stack's Node.js processes write a CPU profile into `dir` when they exit. */
export function cpuProfileFlags(dir: string): string[] {
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** PostgreSQL flags that load pg_stat_statements. */
export const STATEMENT_STATS_FLAGS = ['-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'pg_stat_statements.track=all'];

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  hitCount?: number;
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  /** Microseconds of the system's monotonic clock (as `monotonicMicroseconds()` reads it in any process). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Now on the clock CPU profiles' timestamps use. */
export function monotonicMicroseconds(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** What a sampled function is, from its script and name; the first rule that matches names it. */
const CATEGORIES: [string, (url: string, name: string) => boolean][] = [
  ['garbage collection', (_url, name) => name === '(garbage collector)'],
  ['gzip (zlib)', (url, name) => url.startsWith('node:zlib') || url.includes('/zlib') || name === 'zlibBufferSync' || name === 'processChunkSync'],
  ['JSON parse and stringify', (url, name) => !url && (name === 'parse' || name === 'stringify')],
  ['validation (zod)', (url) => url.includes('node_modules/zod/')],
  ['PostgreSQL client (pg, pg-promise)', (url) => /node_modules\/(pg|pg-promise|pg-protocol|pg-types|pg-copy-streams)\//.test(url)],
  ['Parse Server', (url) => url.includes('node_modules/parse-server/')],
  ['Parse SDK', (url) => url.includes('node_modules/parse/')],
  ['Temporal SDK', (url) => url.includes('node_modules/@temporalio/')],
  ['Express and body parsing', (url) => /node_modules\/(express|body-parser|router|raw-body|iconv-lite|type-is)\//.test(url)],
  ['this plugin: Cloud Code and REST route', (url) => /\/dist\/(cloud|schema|config)\//.test(url)],
  ['this plugin: worker', (url) => url.includes('/dist/worker/')],
  ['Node.js HTTP, streams and sockets', (url) => url.startsWith('node:')],
  ['other libraries', (url) => url.includes('node_modules/')],
  ['V8 and native code', () => true],
];
const NOT_CPU = new Set(['(idle)', '(root)']);

export interface CpuShare {
  category: string;
  /** CPU seconds the process spent in it. */
  seconds: number;
  /** Its share of the process's samples, in %. */
  percent: number;
}

/**
 * Each category's share of a profile's samples taken within `window` (monotonic microseconds), largest first, with its part of `cpuSeconds`: a profile's
 * samples are spaced in wall time, which counts the time the process waited for a core on a busy machine,
 * so the seconds come from the CPU time the kernel counted and the profile gives only the shares.
 */
export function cpuByCategory(profile: CpuProfile, cpuSeconds: number, window: { from: number; to: number }): CpuShare[] {
  const byNode = new Map(profile.nodes.map((node) => [node.id, node]));
  const seconds = new Map<string, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, k) => {
    at += profile.timeDeltas[k] ?? 0;
    const node = byNode.get(id);
    if (at < window.from || at > window.to || !node || NOT_CPU.has(node.callFrame.functionName)) return;
    const { url, functionName } = node.callFrame;
    const category = (CATEGORIES.find(([, matches]) => matches(url, functionName)) as (typeof CATEGORIES)[number])[0];
    seconds.set(category, (seconds.get(category) ?? 0) + (profile.timeDeltas[k] ?? 0) / 1e6);
  });
  const total = [...seconds.values()].reduce((sum, value) => sum + value, 0);
  return [...seconds].map(([category, value]) => ({ category, seconds: (cpuSeconds * value) / total, percent: (100 * value) / total })).sort((a, b) => b.seconds - a.seconds);
}

/** The profile a process wrote into `dir` (named after its pid). */
export function readCpuProfile(dir: string, pid: number): CpuProfile {
  const file = fs.readdirSync(dir).find((name) => name.endsWith('.cpuprofile') && name.includes(`.${pid}.`));
  if (!file) throw new Error(`no CPU profile of process ${pid} in ${dir}`);
  return JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as CpuProfile;
}

export interface StatementTime {
  /** The statement's text, shortened to its first words. */
  statement: string;
  calls: number;
  rows: number;
  totalMs: number;
}

export async function resetStatementStats(databaseURI: string): Promise<void> {
  const db = new pg.Client({ connectionString: databaseURI });
  await db.connect();
  try {
    await db.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await db.query('SELECT pg_stat_statements_reset()');
  } finally {
    await db.end();
  }
}

/** The statements that took the database the most time since the last reset, and the total of all. */
export async function statementTimes(databaseURI: string, top: number): Promise<{ totalMs: number; statements: StatementTime[] }> {
  const db = new pg.Client({ connectionString: databaseURI });
  await db.connect();
  try {
    const { rows } = await db.query<{ query: string; calls: string; rows: string; total: number }>(
      "SELECT query, calls, rows, total_exec_time AS total FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC",
    );
    const shorten = (query: string) => {
      const text = query.replace(/\s+/g, ' ').trim();
      return text.length > 90 ? `${text.slice(0, 90)}…` : text;
    };
    return {
      totalMs: rows.reduce((sum, row) => sum + row.total, 0),
      statements: rows.slice(0, top).map((row) => ({ statement: shorten(row.query), calls: Number(row.calls), rows: Number(row.rows), totalMs: row.total })),
    };
  } finally {
    await db.end();
  }
}
