/**
 * The unit tier's Temporal: the time-skipping test server (Java, from Maven Central; scripts/setup.sh caches
 * it in .cache/) and a worker of the real workflow code with activities the test supplies.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode, makeTelemetryFilterString } from '@temporalio/worker';
import { WORKFLOW_BUNDLE_PREFIX } from '../../../scripts/coverageGate';

const PROJECT_ROOT = path.resolve(__dirname, '../../..');
const TEST_SERVER = path.join(PROJECT_ROOT, 'scripts/temporalTestServer/run.sh');
const TEST_SERVER_JARS = path.join(PROJECT_ROOT, '.cache/temporal-test-server');

let runtimeInstalled = false;

export async function timeSkippingEnvironment(): Promise<TestWorkflowEnvironment> {
  if (!fs.existsSync(TEST_SERVER_JARS)) throw new Error(`the time-skipping test server is not in ${TEST_SERVER_JARS}: run npm run setup`);
  if (!runtimeInstalled) {
    // The SDK's log lines (an activity failing on purpose, the test server's missing capabilities) would
    // drown the test output; errors still show.
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } } });
    runtimeInstalled = true;
  }
  return TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEST_SERVER } } });
}

/**
 * The workflow code, bundled once per test file. Under V8 coverage (NODE_V8_COVERAGE, which `npm test` sets
 * for its jest run) the bundle is written beside the coverage files: a worker that loads it from a path runs
 * it under that file name, so that the coverage maps back to worker/workflows.ts through the bundle's inline
 * source map.
 */
async function workflowBundle(): Promise<{ code: string } | { codePath: string }> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../../../worker/workflows'), logger: quietLogger });
  const coverage = process.env.NODE_V8_COVERAGE;
  if (!coverage) return { code };
  const codePath = path.join(path.dirname(coverage), `${WORKFLOW_BUNDLE_PREFIX}${process.pid}.js`);
  fs.writeFileSync(codePath, code);
  return { codePath };
}

const ignore = () => undefined;
const quietLogger = { log: ignore, trace: ignore, debug: ignore, info: ignore, warn: ignore, error: (message: string) => process.stderr.write(`${message}\n`) };

/**
 * A worker of the batch workflows on its own task queue, with the given activities. Heartbeats go out at
 * once, so that a cancellation reaches a running activity at its next heartbeat, not a minute later.
 */
export async function workflowWorker(env: TestWorkflowEnvironment, taskQueue: string, activities: object): Promise<Worker> {
  return Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities,
    maxHeartbeatThrottleInterval: '50 ms',
  });
}
