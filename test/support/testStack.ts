/**
 * Boots a test stack: ephemeral data folder, free ports, the test memory processor and a Temporal dev
 * server whose payload limit is lowered to 64 KiB. The global setup boots the shared one; fault tests
 * boot a private one they may break.
 */
import fs from 'node:fs';
import path from 'node:path';
import { databaseURI } from '../../config';
import { isFerretDB } from '../../scripts/mongod';
import { freePort } from '../../scripts/processes';
import { type LocalStack, type LocalStackOptions, PROJECT_ROOT, startLocalStack, temporaryDataDir } from '../../scripts/stack';
import { PAYLOAD_LIMIT_BYTES, type TestStackInfo, WEBHOOK_TEST_HOST } from './stackInfo';

export interface TestStack {
  stack: LocalStack;
  info: TestStackInfo;
}

/** A cluster's shape: Parse Server instances and workers (Redis comes with more than one instance). */
export type ClusterShape = Pick<LocalStackOptions, 'instances' | 'workers'>;

export async function bootTestStack(name: string, overrides: NodeJS.ProcessEnv = {}, shape: ClusterShape = {}): Promise<TestStack> {
  const dataDir = temporaryDataDir(`batch-memory-${name}-`);
  const logDir = path.join(dataDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    // A cluster's instances listen after PORT (behind its proxy on PORT), its workers' metrics after WORKER_METRICS_PORT.
    PORT: String(await freePort(1 + (shape.instances ?? 1))),
    LOCAL_REDIS_PORT: String(await freePort()),
    TEMPORAL_PORT: String(await freePort()),
    EMBEDDED_POSTGRES_PORT: String(await freePort()),
    WORKER_METRICS_PORT: String(await freePort(shape.workers ?? 1)),
    TEMPORAL_TASK_QUEUE: `batch-memory-${name}`,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    MAX_BATCH_SIZE: '10000',
    // Small parts and writes, so that multi-part batches, continue-as-new and resuming inside a part
    // happen with a few hundred memories.
    BATCH_PART_MAX_ITEMS: '100',
    BATCH_WRITE_MAX_ITEMS: '30',
    BATCH_PARTS_PER_RUN: '20',
    REST_MAX_JSON_BYTES: String(16 * 1024 * 1024),
    // Far above what the suite sends, all from 127.0.0.1 (hostile input: 1,200 requests; access and load
    // tests: 10 users at once); test/reliability/rate-limits.test.ts tries the limits on a stack of its own.
    USER_RATE_LIMIT: '1000000',
    SIGNUP_RATE_LIMIT: '1000000',
    LOGIN_RATE_LIMIT: '1000000',
    AUTH_FAILURE_LIMIT: '1000000',
    BATCH_WAIT_TIMEOUT: '120s',
    BATCH_HEARTBEAT_TIMEOUT: '5s',
    WEBHOOK_MAX_ATTEMPTS: '3',
    // Test receivers listen on 127.0.0.3 and only there: every other loopback address stays refused,
    // which the webhook attack tests rely on.
    WEBHOOK_ALLOWED_NETWORKS: `${WEBHOOK_TEST_HOST}/32`,
    MEMORY_PROCESSOR_MODULE: path.join(PROJECT_ROOT, 'dist/test/support/testProcessor.js'),
    ...(process.env.COVERAGE_DIR ? { NODE_V8_COVERAGE: process.env.COVERAGE_DIR } : {}),
    ...overrides,
  };
  if (process.env.TEST_DATABASE === 'mongo') {
    // A MongoDB of the stack's own, unless the test names one.
    if (!overrides.DATABASE_URI) {
      const { MongoMemoryServer } = await import('mongodb-memory-server');
      const mongo = await MongoMemoryServer.create();
      env.DATABASE_URI = mongo.getUri('parse');
      (globalThis as Record<string, unknown>).__MONGO__ = mongo;
    }
    if (await isFerretDB(env.DATABASE_URI as string)) env.DATABASE_FERRETDB = 'true';
  }
  const stack = await startLocalStack({
    ...shape,
    env,
    ephemeral: true,
    temporalUI: false,
    temporalDynamicConfig: [`limit.blobSize.error=${PAYLOAD_LIMIT_BYTES}`, `limit.blobSize.warn=${PAYLOAD_LIMIT_BYTES / 2}`],
    output: { logDir },
  }).catch((error: unknown) => {
    // Why a process died while booting is in its log, which goes with the data directory.
    const logs = ['server', 'worker', 'server-2', 'worker-2', 'redis']
      .map((name) => path.join(logDir, `${name}.log`))
      .filter((file) => fs.existsSync(file))
      .map((file) => `--- ${path.basename(file)}\n${fs.readFileSync(file, 'utf8').split('\n').slice(-15).join('\n')}`);
    throw new Error([(error as Error).message, ...logs].join('\n'));
  });
  return { stack, info: describeStack(stack, logDir) };
}

/** What test files (and the benchmark) need to know of a running stack. */
export function describeStack(stack: LocalStack, logDir: string): TestStackInfo {
  return {
    env: stack.env as Record<string, string>,
    serverURL: stack.urls.api,
    appId: stack.config.PARSE_APP_ID,
    masterKey: stack.config.PARSE_MASTER_KEY,
    temporalAddress: stack.urls.temporal,
    namespace: stack.config.TEMPORAL_NAMESPACE,
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    logDir,
    serverPid: stack.processes.get('server')?.pid as number,
    workerPid: stack.processes.get('worker')?.pid as number,
    databaseURI: databaseURI(stack.config),
    instanceURLs: stack.instanceURLs,
    pids: Object.fromEntries([...stack.processes].map(([name, child]) => [name, child.pid as number])),
  };
}
