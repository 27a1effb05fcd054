/**
 * The MongoDB path (`npm run bench -- --mongo`; `--smoke` for tiny sizes): the runner's stack on
 * mongodb-memory-server (a real mongod where there is one, FerretDB otherwise: scripts/mongod.ts), and
 * the product's throughput for one gzip NDJSON upload of 10,000 and of 100,000 memories against
 * Parse.Object.saveAll of the same memories into the same database. Writes mongo-results.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporalConnectionOptions } from '../config';
import { describeMachine } from '../scripts/machine';
import { chooseMongod, isFerretDB } from '../scripts/mongod';
import type { LocalStack } from '../scripts/stack';
import { stackApi } from '../test/reliability/stackApi';
import type { TestStackInfo } from '../test/support/stackInfo';
import { saveAllRate } from './baselines';
import { formatNumber as f } from './report';
import { type BenchContext, benchUser, scaling, warmUp } from './scenarios';

const FULL_SIZES = [10_000, 100_000];
const SMOKE_SIZES = [200, 500];

export interface MongoThroughputRow {
  memories: number;
  oursPerSecond: number;
  saveAllPerSecond: number;
  vsSaveAll: number;
}

export interface MongoBenchReport {
  mode: 'full' | 'smoke';
  date: string;
  machine: ReturnType<typeof describeMachine>;
  database: string;
  rows: MongoThroughputRow[];
}

interface MongoBenchOptions {
  smoke: boolean;
  resultsFile: string;
  logDir: string;
  boot(logDir: string, overrides: NodeJS.ProcessEnv): Promise<{ stack: LocalStack; info: TestStackInfo }>;
  say(line: string): void;
}

export async function mongoBench({ smoke, resultsFile, logDir, boot, say }: MongoBenchOptions): Promise<number> {
  const mongod = chooseMongod();
  Object.assign(process.env, mongod.env);
  const { MongoMemoryServer } = await import('mongodb-memory-server');
  const mongo = await MongoMemoryServer.create();
  const databaseURI = mongo.getUri('parse');
  const ferretdb = await isFerretDB(databaseURI);
  say(`bench --mongo: ${mongod.description}${ferretdb ? ' (DATABASE_FERRETDB=true)' : ''}`);
  let connection: Connection | undefined;
  let stack: LocalStack | undefined;
  const rows: MongoThroughputRow[] = [];
  try {
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
      const row = { memories, oursPerSecond: ours.perSecond, saveAllPerSecond, vsSaveAll: ours.perSecond / saveAllPerSecond };
      rows.push(row);
      say(`MongoDB, ${memories} memories: this product ${f(row.oursPerSecond)} /s, saveAll ${f(saveAllPerSecond)} /s: ${f(row.vsSaveAll)} × saveAll`);
    }
  } finally {
    await connection?.close();
    await stack?.stop();
    await mongo.stop();
  }
  const report: MongoBenchReport = { mode: smoke ? 'smoke' : 'full', date: new Date().toISOString(), machine: describeMachine(), database: mongod.description, rows };
  fs.mkdirSync(path.dirname(resultsFile), { recursive: true });
  fs.writeFileSync(resultsFile, `${JSON.stringify(report, null, 2)}\n`);
  say(`written: ${resultsFile}`);
  return rows.every((row) => Number.isFinite(row.vsSaveAll)) ? 0 : 1;
}
