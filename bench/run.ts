/**
 * `npm run bench`: boots a stack of its own, runs the benchmark scenarios (docs/requirements.md §7 and the targets), then a profiled
 * upload on another stack, and writes BENCHMARKS.md and bench/results.json. `npm run bench:smoke` (`--smoke`)
 * runs every scenario at tiny sizes into coverage/bench-smoke/ (or BENCH_OUTPUT_DIR), to show that each one
 * runs and measures. `-- --million` adds one batch of a million memories to the scaling table; `-- --profile[=N]`
 * runs the profiled upload alone (of N memories) and prints where its time went; `-- --mongo` measures the MongoDB
 * path alone (bench/mongo.ts), into a section of BENCHMARKS.md that the other runs keep.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporalConnectionOptions } from '../config';
import { describeMachine } from '../scripts/machine';
import { freePort } from '../scripts/processes';
import { type LocalStack, PROJECT_ROOT, startLocalStack, temporaryDataDir } from '../scripts/stack';
import { stackApi } from '../test/reliability/stackApi';
import { cpuSeconds } from './measure';
import type { TestStackInfo } from '../test/support/stackInfo';
import { describeStack } from '../test/support/testStack';
import { postgresCopyRate, postgresFloorRate, saveAllRate } from './baselines';
import { compareInstances } from './cluster';
import { MONGO_SECTION, mongoBench } from './mongo';
import { STATEMENT_STATS_FLAGS, cpuByCategory, cpuProfileFlags, monotonicMicroseconds, readCpuProfile, resetStatementStats, statementTimes } from './profile';
import {
  type BaselineRow,
  type BenchReport,
  type BenchResults,
  type ProfileReport,
  type ScalingRow,
  benchmarkMarkdown,
  profileSection,
  formatNumber as f,
  judgeTargets,
  MILLION_MEMORIES,
  nodeFlagsOf,
  stackSettings,
  unmeasuredFigures,
  verdictText,
  writeDocument,
} from './report';
import { type BenchContext, backToBack, benchUser, claimCheck, concurrentBatches, scaling, singleBatch, warmUp } from './scenarios';

interface Sizes {
  concurrent: { batches: number; memories: number };
  single: number;
  sequence: { batches: number; memories: number };
  claimCheck: number[];
  claimCheckRepeats: number;
  scaling: number[];
  /** Memories of the profiled upload, on a stack of its own. */
  profiled: number;
}

/** Baselines run beside the scaling sizes up to this; saveAll of a million would take a quarter of an hour. */
const BASELINE_MAX_MEMORIES = 100_000;
/** Statements of the profiled run listed in BENCHMARKS.md, the most costly first. */
const PROFILED_STATEMENTS = 8;

const FULL_SIZES: Sizes = {
  concurrent: { batches: 10, memories: 100 },
  single: 500,
  sequence: { batches: 60, memories: 100 },
  claimCheck: [100, 1000],
  claimCheckRepeats: 5,
  scaling: [1000, 10_000, 100_000],
  profiled: 100_000,
};

const SMOKE_SIZES: Sizes = {
  concurrent: { batches: 2, memories: 10 },
  single: 20,
  sequence: { batches: 3, memories: 10 },
  claimCheck: [50, 100],
  claimCheckRepeats: 2,
  scaling: [200, 500],
  profiled: 500,
};

const say = (line: string) => process.stdout.write(`${line}\n`);

/** A profiled stack: its Node.js processes write CPU profiles into `cpuProfileDir`, PostgreSQL keeps statement statistics. */
interface Profiling {
  cpuProfileDir: string;
}

async function bootStack(logDir: string, overrides: NodeJS.ProcessEnv = {}, profiling?: Profiling): Promise<{ stack: LocalStack; info: TestStackInfo }> {
  const dataDir = temporaryDataDir('batch-memory-bench-');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // The runner measures a stack it owns entirely: embedded PostgreSQL and its own Temporal dev server.
    DATABASE_URI: '',
    TEMPORAL_ADDRESS: '',
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    TEMPORAL_PORT: String(await freePort()),
    EMBEDDED_POSTGRES_PORT: String(await freePort()),
    WORKER_METRICS_PORT: '0',
    TEMPORAL_TASK_QUEUE: 'batch-memory-bench',
    LOG_LEVEL: 'warn',
    MAX_BATCH_SIZE: '100000',
    // The per-user and per-address limits would shape the scenarios (every bench user signs up and
    // submits from 127.0.0.1) instead of the product's own speed.
    USER_RATE_LIMIT: '1000000',
    SIGNUP_RATE_LIMIT: '1000000',
    LOGIN_RATE_LIMIT: '1000000',
    ...overrides,
  };
  const stack = await startLocalStack({
    env,
    ephemeral: true,
    temporalUI: false,
    output: { logDir },
    onStatus: (message) => say(`[stack] ${message}`),
    ...(profiling ? { nodeFlags: cpuProfileFlags(profiling.cpuProfileDir), postgresFlags: STATEMENT_STATS_FLAGS } : {}),
  });
  return { stack, info: describeStack(stack, logDir) };
}

async function measure(context: BenchContext, sizes: Sizes): Promise<BenchResults> {
  await warmUp(context);
  const concurrent = await concurrentBatches(context, sizes.concurrent.batches, sizes.concurrent.memories);
  const single = await singleBatch(context, sizes.single);
  const sequence = await backToBack(context, sizes.sequence.batches, sizes.sequence.memories);
  const claimCheckRows = [];
  for (const memories of sizes.claimCheck) claimCheckRows.push(await claimCheck(context, memories, sizes.claimCheckRepeats));
  const user = await benchUser(context, 'bench-scaling');
  const scalingRows: ScalingRow[] = [];
  const baselineRows: BaselineRow[] = [];
  for (const memories of sizes.scaling) {
    const ours = await scaling(context, user, memories);
    scalingRows.push(ours);
    if (memories > BASELINE_MAX_MEMORIES) continue;
    const saveAllPerSecond = await saveAllRate(context.info, user.id, memories);
    const floorPerSecond = await postgresFloorRate(context.info.databaseURI, memories);
    const copyPerSecond = await postgresCopyRate(context.info.databaseURI, memories);
    const row: BaselineRow = {
      memories,
      oursPerSecond: ours.perSecond,
      saveAllPerSecond,
      floorPerSecond,
      copyPerSecond,
      vsSaveAll: ours.perSecond / saveAllPerSecond,
      vsFloor: ours.perSecond / floorPerSecond,
      vsCopy: ours.perSecond / copyPerSecond,
    };
    baselineRows.push(row);
    say(
      `6. ${memories} memories: saveAll ${f(saveAllPerSecond)} /s, PostgreSQL INSERT ${f(floorPerSecond)} /s, COPY ${f(copyPerSecond)} /s; ` +
        `this product ${f(row.vsSaveAll)} × saveAll, ${f(row.vsFloor)} × INSERT, ${f(row.vsCopy)} × COPY`,
    );
  }
  // The largest size of the table again, processed after the upload (all or nothing, the server's default): what overlapping saves.
  scalingRows.push(await scaling(context, user, Math.min(Math.max(...sizes.scaling), BASELINE_MAX_MEMORIES), 'after_upload'));
  return { concurrent, single, sequence, claimCheck: claimCheckRows, scaling: scalingRows, baselines: baselineRows };
}

/**
 * One upload of `memories` on a stack of its own whose Parse Server and worker run with `--cpu-prof` and whose
 * PostgreSQL keeps pg_stat_statements: where the CPU of each process went, and what the database spent its time on.
 * The profiles cover each process's whole life (boot and warm-up too); statement times cover the upload only.
 */
async function profiledUpload(logDir: string, memories: number): Promise<ProfileReport> {
  const cpuProfileDir = path.join(logDir, 'cpu-profiles');
  fs.mkdirSync(cpuProfileDir, { recursive: true });
  say(`7. profiling an upload of ${memories} memories on a stack of its own (CPU profiles in ${cpuProfileDir})`);
  const { stack, info } = await bootStack(logDir, {}, { cpuProfileDir });
  const stopOnSignal = (signal: NodeJS.Signals) => void stack.stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  let connection: Connection | undefined;
  let row: ScalingRow;
  let database: ProfileReport['database'];
  let cpuSpent: ProfileReport['cpuSeconds'];
  const window = { from: 0, to: 0 };
  try {
    connection = await Connection.connect(temporalConnectionOptions(stack.config));
    const context: BenchContext = { info, api: stackApi(info), temporal: new Client({ connection, namespace: info.namespace }), pids: { server: info.serverPid, worker: info.workerPid }, say };
    await warmUp(context);
    const user = await benchUser(context, 'bench-profile');
    await resetStatementStats(info.databaseURI);
    const before = { server: cpuSeconds(info.serverPid), worker: cpuSeconds(info.workerPid) };
    window.from = monotonicMicroseconds();
    row = await scaling(context, user, memories);
    window.to = monotonicMicroseconds();
    cpuSpent = { server: cpuSeconds(info.serverPid) - before.server, worker: cpuSeconds(info.workerPid) - before.worker };
    database = await statementTimes(info.databaseURI, PROFILED_STATEMENTS);
  } finally {
    await connection?.close();
    // The processes write their profiles as they exit.
    await stack.stop();
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
  }
  const server = cpuByCategory(readCpuProfile(cpuProfileDir, info.serverPid), cpuSpent.server, window);
  const worker = cpuByCategory(readCpuProfile(cpuProfileDir, info.workerPid), cpuSpent.worker, window);
  const report: ProfileReport = { memories, seconds: row.seconds, perSecond: row.perSecond, cpu: { server, worker }, cpuSeconds: cpuSpent, database };
  say(
    `7. profiled ${memories}: ${f(row.perSecond)} memories/s; CPU Parse Server ${f(report.cpuSeconds.server)} s (${server
      .slice(0, 3)
      .map((share) => `${share.category} ${f(share.percent)} %`)
      .join(', ')}), ` +
      `worker ${f(report.cpuSeconds.worker)} s (${worker
        .slice(0, 3)
        .map((share) => `${share.category} ${f(share.percent)} %`)
        .join(', ')}); database ${f(database.totalMs / 1000)} s in statements`,
  );
  return report;
}

async function main(): Promise<number> {
  const smoke = process.argv.includes('--smoke');
  const million = process.argv.includes('--million');
  const outputDir = process.env.BENCH_OUTPUT_DIR ?? (smoke ? path.join(PROJECT_ROOT, 'coverage', 'bench-smoke') : undefined);
  const markdownFile = path.join(outputDir ?? PROJECT_ROOT, 'BENCHMARKS.md');
  const resultsFile = path.join(outputDir ?? path.join(PROJECT_ROOT, 'bench'), 'results.json');
  const logDir = path.join(path.dirname(resultsFile), 'logs');
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.mkdirSync(logDir, { recursive: true });
  // The MongoDB path, on a stack of its own (bench/mongo.ts).
  if (process.argv.includes('--mongo')) return mongoBench({ smoke, resultsFile: path.join(path.dirname(resultsFile), 'mongo-results.json'), markdownFile, logDir, boot: bootStack, say });

  const profileOnly = process.argv.find((arg) => arg === '--profile' || arg.startsWith('--profile='));
  if (profileOnly) {
    // Only the profiled upload (of --profile=N memories), printed: for looking into where the time goes without a whole run.
    const memories = profileOnly.includes('=') ? Number(profileOnly.split('=')[1]) : (smoke ? SMOKE_SIZES : FULL_SIZES).profiled;
    say(profileSection(await profiledUpload(logDir, memories)).join('\n'));
    return 0;
  }

  // `--cluster`: only the comparison of one instance with two (a full run ends with it too).
  const comparison = () => compareInstances(markdownFile, logDir, say, ...(smoke ? [2, 10] : []));
  if (process.argv.includes('--cluster')) {
    await comparison();
    return 0;
  }

  say(`${smoke ? 'bench smoke' : 'bench'}: booting a stack of its own (process logs in ${logDir})`);
  const { stack, info } = await bootStack(logDir);
  const stopOnSignal = (signal: NodeJS.Signals) => void stack.stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  let connection: Connection | undefined;
  let results: BenchResults;
  // What else ran on the machine while it measured (its load average), kept with the figures.
  let loadAtStart: number[];
  let loadAtEnd: number[];
  let settings: BenchReport['settings'];
  try {
    connection = await Connection.connect(temporalConnectionOptions(stack.config));
    const context: BenchContext = {
      info,
      api: stackApi(info),
      temporal: new Client({ connection, namespace: info.namespace }),
      pids: { server: info.serverPid, worker: info.workerPid },
      say,
    };
    settings = stackSettings(stack.config, nodeFlagsOf(info.serverPid));
    const sizes = smoke ? SMOKE_SIZES : FULL_SIZES;
    loadAtStart = os.loadavg();
    results = await measure(context, million ? { ...sizes, scaling: [...sizes.scaling, MILLION_MEMORIES] } : sizes);
    loadAtEnd = os.loadavg();
  } finally {
    await connection?.close();
    await stack.stop();
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
  }
  const report: BenchReport = {
    mode: smoke ? 'smoke' : 'full',
    date: new Date().toISOString(),
    machine: describeMachine(),
    settings,
    results,
    profile: await profiledUpload(logDir, (smoke ? SMOKE_SIZES : FULL_SIZES).profiled),
    targets: judgeTargets(results, os.cpus().length),
    load: { start: loadAtStart, end: loadAtEnd },
  };

  fs.mkdirSync(path.dirname(resultsFile), { recursive: true });
  fs.writeFileSync(resultsFile, `${JSON.stringify(report, null, 2)}\n`);
  // The MongoDB path's section is written by `--mongo` alone: it stays as it was.
  writeDocument(markdownFile, benchmarkMarkdown(report), [MONGO_SECTION]);
  if (!smoke) await comparison();
  say('\ntargets:');
  for (const verdict of report.targets) say(`  ${verdict.target}: ${verdictText(verdict)}`);
  say(`written: ${markdownFile}, ${resultsFile}`);

  const unmeasured = unmeasuredFigures(report.results);
  if (unmeasured.length > 0) {
    process.stderr.write(`bench: these figures are not finite numbers: ${unmeasured.join(', ')}\n`);
    return 1;
  }
  if (smoke) say(`bench smoke: ${Object.keys(report.results).length} scenarios, all produced numbers`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
