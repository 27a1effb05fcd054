/**
 * The MongoDB path (`npm run bench -- --mongo`; `--smoke` for tiny sizes): the runner's stack on
 * mongodb-memory-server (a real mongod where there is one, FerretDB otherwise: scripts/mongod.ts), and
 * the product's throughput for one gzip NDJSON upload of 10,000 and of 100,000 memories against
 * Parse.Object.saveAll of the same memories into the same database. Writes mongo-results.json and its own
 * section of BENCHMARKS.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporalConnectionOptions } from '../config';
import { describeMachine, machineLine } from '../scripts/machine';
import { chooseMongod, mongoServerInfo } from '../scripts/mongod';
import { type LocalStack, PROJECT_ROOT } from '../scripts/stack';
import { stackApi } from '../test/reliability/stackApi';
import type { TestStackInfo } from '../test/support/stackInfo';
import { SAVE_ALL_OBJECTS, saveAllRate } from './baselines';
import { type MarkedSection, formatNumber as f, table, writeSection } from './report';
import { type BenchContext, benchUser, scaling, warmUp } from './scenarios';

const FULL_SIZES = [10_000, 100_000];
const SMOKE_SIZES = [200, 500];

export const MONGO_SECTION: MarkedSection = { start: '<!-- the MongoDB path: written by bench/mongo.ts -->', end: '<!-- end of the MongoDB path -->' };

export interface MongoThroughputRow {
  memories: number;
  /** From the start of the upload to the batch's completion time. */
  seconds: number;
  oursPerSecond: number;
  saveAllPerSecond: number;
  vsSaveAll: number;
}

export interface MongoBenchReport {
  mode: 'full' | 'smoke';
  date: string;
  machine: ReturnType<typeof describeMachine>;
  /** The machine's load average (1, 5 and 15 minutes) when the run ended: other programs' share of the cores. */
  loadAverage: number[];
  database: string;
  rows: MongoThroughputRow[];
}

interface MongoBenchOptions {
  smoke: boolean;
  resultsFile: string;
  markdownFile: string;
  logDir: string;
  boot(logDir: string, overrides: NodeJS.ProcessEnv): Promise<{ stack: LocalStack; info: TestStackInfo }>;
  say(line: string): void;
}

/** The database as the document names it: what the server says it is, and how it was started. */
async function describeDatabase(uri: string, mongodDescription: string): Promise<string> {
  const { version, ferretdbVersion } = await mongoServerInfo(uri);
  if (ferretdbVersion === undefined) return `MongoDB ${version}: ${mongodDescription}`;
  const wrapper = process.env.MONGOMS_SYSTEM_BINARY === path.join(PROJECT_ROOT, 'scripts/mongod-ferretdb');
  return `FerretDB ${ferretdbVersion} (answering as MongoDB ${version})${wrapper ? ' with its PostgreSQL backend, behind scripts/mongod-ferretdb' : `: ${mongodDescription}`}, with DATABASE_FERRETDB=true`;
}

export async function mongoBench({ smoke, resultsFile, markdownFile, logDir, boot, say }: MongoBenchOptions): Promise<number> {
  const mongod = chooseMongod();
  Object.assign(process.env, mongod.env);
  const { MongoMemoryServer } = await import('mongodb-memory-server');
  const mongo = await MongoMemoryServer.create();
  const databaseURI = mongo.getUri('parse');
  let connection: Connection | undefined;
  let stack: LocalStack | undefined;
  let database: string;
  const rows: MongoThroughputRow[] = [];
  try {
    database = await describeDatabase(databaseURI, mongod.description);
    const ferretdb = database.startsWith('FerretDB');
    say(`bench --mongo: ${database}`);
    const booted = await boot(logDir, { DATABASE_URI: databaseURI, ...(ferretdb ? { DATABASE_FERRETDB: 'true' } : {}) });
    stack = booted.stack;
    connection = await Connection.connect(temporalConnectionOptions(stack.config));
    const context: BenchContext = {
      info: booted.info,
      api: stackApi(booted.info),
      temporal: new Client({ connection, namespace: booted.info.namespace }),
      pids: { server: booted.info.serverPid, worker: booted.info.workerPid },
      say,
    };
    await warmUp(context);
    const user = await benchUser(context, 'bench-mongo');
    for (const memories of smoke ? SMOKE_SIZES : FULL_SIZES) {
      const ours = await scaling(context, user, memories);
      const saveAllPerSecond = await saveAllRate(context.info, user.id, memories);
      const row = { memories, seconds: ours.seconds, oursPerSecond: ours.perSecond, saveAllPerSecond, vsSaveAll: ours.perSecond / saveAllPerSecond };
      rows.push(row);
      say(`MongoDB, ${memories} memories: this product ${f(row.oursPerSecond)} /s, saveAll ${f(saveAllPerSecond)} /s: ${f(row.vsSaveAll)} × saveAll`);
    }
  } finally {
    await connection?.close();
    await stack?.stop();
    await mongo.stop();
  }
  const report: MongoBenchReport = { mode: smoke ? 'smoke' : 'full', date: new Date().toISOString(), machine: describeMachine(), loadAverage: os.loadavg(), database, rows };
  fs.mkdirSync(path.dirname(resultsFile), { recursive: true });
  fs.writeFileSync(resultsFile, `${JSON.stringify(report, null, 2)}\n`);
  writeSection(markdownFile, MONGO_SECTION, mongoMarkdown(report));
  say(`written: ${resultsFile}, the MongoDB path in ${markdownFile}`);
  return rows.every((row) => Number.isFinite(row.vsSaveAll)) ? 0 : 1;
}

export function mongoMarkdown(report: MongoBenchReport): string {
  const { machine } = report;
  return [
    MONGO_SECTION.start,
    '## The MongoDB path',
    '',
    `Written by \`npm run bench -- --mongo\` (\`bench/mongo.ts\`): the stack of the sections above on MongoDB instead of PostgreSQL, its`,
    'database started by mongodb-memory-server (a real mongod where there is one, FerretDB otherwise: `scripts/mongod.ts`), warmed up the same',
    `way. One upload of gzip NDJSON through \`BatchMemoryClient.addNdjson\`, timed from the start of the upload to the batch's completion time,`,
    `against \`Parse.Object.saveAll\` of the same memories, ${SAVE_ALL_OBJECTS} \`Memory\` objects at a time with the master key, into the same database.`,
    ...(report.mode === 'smoke' ? ['', "**Smoke run**: tiny sizes, to show that the comparison runs and measures; not the product's figures."] : []),
    '',
    `- date: ${report.date}`,
    `- machine: ${machineLine(machine)}; load average when the run ended ${report.loadAverage.map((load) => f(load)).join(', ')} (1, 5, 15 minutes)`,
    `- commit: ${machine.commit}${machine.uncommittedChanges ? ' (with uncommitted changes)' : ''}`,
    `- database: ${report.database}`,
    '',
    table(
      ['memories', 'end to end', 'this product', 'saveAll', 'relative to saveAll'],
      report.rows.map((row) => [row.memories, `${f(row.seconds)} s`, `${f(row.oursPerSecond)} /s`, `${f(row.saveAllPerSecond)} /s`, `${f(row.vsSaveAll)} ×`]),
    ),
    MONGO_SECTION.end,
    '',
  ].join('\n');
}
