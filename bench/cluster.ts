/**
 * One instance against two (`npm run bench -- --cluster`, and at the end of a full `npm run bench`): the
 * same 10 users × 100 memories at once, through the public port, on a stack of one Parse Server and one
 * worker and on `npm run cluster`'s shape (two instances behind the round-robin proxy, two workers, Redis),
 * each booted fresh and warmed up. Writes its own section of BENCHMARKS.md, leaving the rest as it is.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporalConnectionOptions } from '../config';
import { describeMachine, machineLine } from '../scripts/machine';
import { freePort } from '../scripts/processes';
import { startLocalStack, temporaryDataDir } from '../scripts/stack';
import { stackApi } from '../test/reliability/stackApi';
import { describeStack } from '../test/support/testStack';
import { type MarkedSection, formatNumber as f, table, writeSection } from './report';
import { mean, memoriesFrom, percentile } from './measure';
import { type BenchContext, benchUser, submitUntilResults, warmUp } from './scenarios';

export interface ClusterShape {
  instances: number;
  workers: number;
}

export interface ClusterRow extends ClusterShape {
  users: number;
  memoriesPerUser: number;
  successRate: number;
  /** Memory rows the batches added, against users × memoriesPerUser. */
  storedMemories: number;
  wallMs: number;
  memoriesPerSecond: number;
  averageMs: number;
  p95Ms: number;
  /** Share of the machine's CPU time (all cores) that was busy while the batches ran. */
  machineBusyPercent: number;
  /** CPU seconds spent while the batches ran, by part of the stack. */
  cpuSeconds: { parseServer: number; workers: number; temporal: number; postgres: number; benchAndProxy: number };
}

export const CLUSTER_SHAPES: ClusterShape[] = [
  { instances: 1, workers: 1 },
  { instances: 2, workers: 2 },
];

const SECTION: MarkedSection = { start: '<!-- one instance against two: written by bench/cluster.ts -->', end: '<!-- end of one instance against two -->' };

/** Linux reports process CPU time in clock ticks of USER_HZ, 100 per second on every mainstream kernel. */
const TICKS_PER_SECOND = 100;

/** Busy and total CPU ticks of the whole machine, from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  const idle = fields[3] + (fields[4] ?? 0); // idle and iowait
  return { busy: total - idle, total };
}

/** CPU ticks (user and system) a process has used so far; 0 once it is gone. */
function processTicks(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** A process and its children (PostgreSQL's backends). */
function withChildren(pid: number): number[] {
  const children = fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [pid, ...children];
}

type CpuParts = Omit<ClusterRow['cpuSeconds'], 'benchAndProxy'>;

/** CPU ticks so far of each process of each part; PostgreSQL's backends are listed anew each time (a pool may open more). */
function cpuTicksOf(pids: () => Record<keyof CpuParts, number[]>): Record<keyof CpuParts, Map<number, number>> {
  const listed = pids();
  const ticks = (list: number[]) => new Map(list.map((pid) => [pid, processTicks(pid)]));
  return { parseServer: ticks(listed.parseServer), workers: ticks(listed.workers), temporal: ticks(listed.temporal), postgres: ticks(listed.postgres) };
}

/** CPU seconds a part used between two readings; a process born in between counts from zero. */
function cpuSecondsBetween(before: Map<number, number>, after: Map<number, number>): number {
  let ticks = 0;
  for (const [pid, now] of after) ticks += now - (before.get(pid) ?? 0);
  return ticks / TICKS_PER_SECOND;
}

async function measureShape(shape: ClusterShape, users: number, memoriesPerUser: number, logDir: string, say: (line: string) => void): Promise<ClusterRow> {
  const label = `${shape.instances} instance${shape.instances === 1 ? '' : 's'}, ${shape.workers} worker${shape.workers === 1 ? '' : 's'}`;
  const shapeLogs = path.join(logDir, `cluster-${shape.instances}x${shape.workers}`);
  fs.mkdirSync(shapeLogs, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URI: '',
    TEMPORAL_ADDRESS: '',
    REDIS_URL: '',
    DATA_DIR: temporaryDataDir('batch-memory-bench-cluster-'),
    // The proxy on PORT, the instances after it.
    PORT: String(await freePort(1 + shape.instances)),
    TEMPORAL_PORT: String(await freePort()),
    EMBEDDED_POSTGRES_PORT: String(await freePort()),
    LOCAL_REDIS_PORT: String(await freePort()),
    WORKER_METRICS_PORT: '0',
    TEMPORAL_TASK_QUEUE: 'batch-memory-bench-cluster',
    LOG_LEVEL: 'warn',
  };
  const stack = await startLocalStack({ ...shape, env, ephemeral: true, temporalUI: false, output: { logDir: shapeLogs }, onStatus: (message) => say(`[${label}] ${message}`) });
  const connection = await Connection.connect(temporalConnectionOptions(stack.config)).catch(async (error: unknown) => {
    await stack.stop();
    throw error;
  });
  try {
    const info = describeStack(stack, shapeLogs);
    const context: BenchContext = { info, api: stackApi(info), temporal: new Client({ connection, namespace: info.namespace }), pids: { server: info.serverPid, worker: info.workerPid }, say };
    await warmUp(context);
    const named = (prefix: string) =>
      Object.entries(info.pids)
        .filter(([name]) => name === prefix || name.startsWith(`${prefix}-`))
        .map(([, pid]) => pid);
    const postgresPid = stack.pids().find((pid) => !Object.values(info.pids).includes(pid));
    const pids = () => ({ parseServer: named('server'), workers: named('worker'), temporal: named('temporal'), postgres: postgresPid ? withChildren(postgresPid) : [] });

    // Rows created from now on (a count of a whole PostgreSQL class is Parse Server's estimate, not a count).
    const since = { createdAt: { $gte: { __type: 'Date', iso: new Date().toISOString() } } };
    const clients = await Promise.all(Array.from({ length: users }, (_, i) => benchUser(context, `bench-cluster-${i}`)));
    const memories = memoriesFrom(0, memoriesPerUser);
    const machineBefore = machineTicks();
    const ticksBefore = cpuTicksOf(pids);
    const benchBefore = process.cpuUsage();
    const started = performance.now();
    const outcomes = await Promise.all(clients.map((user) => submitUntilResults(user.client, memories, 'bench-cluster')));
    const wallMs = performance.now() - started;
    const bench = process.cpuUsage(benchBefore);
    const ticksAfter = cpuTicksOf(pids);
    const machineAfter = machineTicks();
    const storedMemories = await context.api.count('Memory', since);

    const seconds = (part: keyof CpuParts) => cpuSecondsBetween(ticksBefore[part], ticksAfter[part]);
    const row: ClusterRow = {
      ...shape,
      users,
      memoriesPerUser,
      successRate: (100 * outcomes.filter((outcome) => outcome.succeeded).length) / users,
      storedMemories,
      wallMs,
      memoriesPerSecond: (users * memoriesPerUser) / (wallMs / 1000),
      averageMs: mean(outcomes.map((outcome) => outcome.ms)),
      p95Ms: percentile(
        outcomes.map((outcome) => outcome.ms),
        95,
      ),
      machineBusyPercent: (100 * (machineAfter.busy - machineBefore.busy)) / (machineAfter.total - machineBefore.total),
      cpuSeconds: {
        parseServer: seconds('parseServer'),
        workers: seconds('workers'),
        temporal: seconds('temporal'),
        postgres: seconds('postgres'),
        benchAndProxy: (bench.user + bench.system) / 1e6,
      },
    };
    say(
      `[${label}] ${users} × ${memoriesPerUser}: ${f(row.memoriesPerSecond)} memories/s, p95 ${f(row.p95Ms)} ms, ${row.storedMemories} memories stored, machine CPU ${f(row.machineBusyPercent)} % busy`,
    );
    return row;
  } finally {
    await connection.close();
    await stack.stop();
  }
}

/** Runs the comparison and writes its section into `markdownFile`; throws when a batch was not exact. */
export async function compareInstances(markdownFile: string, logDir: string, say: (line: string) => void, users = 10, memoriesPerUser = 100): Promise<ClusterRow[]> {
  const rows: ClusterRow[] = [];
  for (const shape of CLUSTER_SHAPES) rows.push(await measureShape(shape, users, memoriesPerUser, logDir, say));
  writeSection(markdownFile, SECTION, clusterMarkdown(rows));
  say(`written: the comparison of one instance with two in ${markdownFile}`);
  const inexact = rows.filter((row) => row.successRate !== 100 || row.storedMemories !== row.users * row.memoriesPerUser);
  if (inexact.length > 0) throw new Error(`not every batch was exact on: ${inexact.map((row) => `${row.instances} instance(s)`).join(', ')}`);
  return rows;
}

export function clusterMarkdown(rows: ClusterRow[]): string {
  const machine = describeMachine();
  const [one, two] = rows;
  const cpu = (row: ClusterRow) => {
    const { parseServer, workers, temporal, postgres, benchAndProxy } = row.cpuSeconds;
    return `${f(parseServer)} / ${f(workers)} / ${f(temporal)} / ${f(postgres)} / ${f(benchAndProxy)}`;
  };
  const busiest = (row: ClusterRow): string => {
    const parts: [string, number][] = [
      ['Parse Server', row.cpuSeconds.parseServer],
      ['the workers', row.cpuSeconds.workers],
      ['Temporal', row.cpuSeconds.temporal],
      ['PostgreSQL', row.cpuSeconds.postgres],
    ];
    return parts.sort((a, b) => b[1] - a[1])[0][0];
  };
  return [
    SECTION.start,
    '## One instance against two',
    '',
    `Written by \`npm run bench -- --cluster\` (and by a full \`npm run bench\`, \`bench/cluster.ts\`): ${one.users} users each submit a batch of ${one.memoriesPerUser}`,
    'at the same moment through the public port (signed up beforehand), on two stacks booted in turn on this machine with the default settings:',
    "one Parse Server and one worker, then `npm run cluster`'s shape (two Parse Server instances behind the round-robin proxy, two",
    'workers, Redis), each with one embedded PostgreSQL and one Temporal dev server, warmed up the same way first. Wall time runs from',
    "the first submit until every batch's per-item results are in hand; exact: every batch completed with every memory stored once",
    '(memory rows added against users × memories). CPU seconds are read from `/proc` over the same span: Parse Server / workers /',
    "Temporal / PostgreSQL / the benchmark's own process (its clients, and the proxy, which runs in it).",
    '',
    `- date: ${new Date().toISOString()}`,
    `- machine: ${machineLine(machine)}`,
    `- commit: ${machine.commit}${machine.uncommittedChanges ? ' (with uncommitted changes)' : ''}`,
    '',
    table(
      ['stack', 'users × memories', 'exact', 'wall time', 'throughput', 'average latency', 'p95 latency', 'machine CPU busy', 'CPU s: server / workers / Temporal / PostgreSQL / bench'],
      rows.map((row) => [
        `${row.instances} instance${row.instances === 1 ? '' : 's'}, ${row.workers} worker${row.workers === 1 ? '' : 's'}`,
        `${row.users} × ${row.memoriesPerUser}`,
        row.successRate === 100 && row.storedMemories === row.users * row.memoriesPerUser
          ? `yes (${f(row.storedMemories)} stored)`
          : `no (${f(row.successRate)} % completed, ${f(row.storedMemories)} stored)`,
        `${f(row.wallMs)} ms`,
        `${f(row.memoriesPerSecond)} memories/s`,
        `${f(row.averageMs)} ms`,
        `${f(row.p95Ms)} ms`,
        `${f(row.machineBusyPercent)} %`,
        cpu(row),
      ]),
    ),
    '',
    `Two instances gave ${f(two.memoriesPerSecond / one.memoriesPerSecond)} × the throughput of one. What bounds both: every process shares this`,
    `machine's ${os.cpus().length} cores, which were ${f(one.machineBusyPercent)} % (one instance) and ${f(two.machineBusyPercent)} % (two) busy while the batches ran`,
    `(other programs on the machine included); most of the stack's CPU went to ${busiest(one) === busiest(two) ? `${busiest(one)} in both` : `${busiest(one)} with one instance and to ${busiest(two)} with two`},`,
    'and one Temporal dev server and one PostgreSQL serve both instances. A second instance on the same cores adds processes, not CPU:',
    'the row shows the product running spread over instances, not how it scales on machines of their own.',
    SECTION.end,
    '',
  ].join('\n');
}
