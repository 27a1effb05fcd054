import fs from 'node:fs';
import path from 'node:path';
import { NativeConnection, Runtime, Worker, makeTelemetryFilterString } from '@temporalio/worker';
import Parse from '../schema/parseSdk';
import { type Config, parseEndpoint, temporalConnectionOptions } from '../config';
import { createLogger, type Logger } from '../config/log';
import { createActivities } from './activities';
import { useNodeHttpForParse } from './parseTransport';
import { type MemoryProcessor, loadProcessor } from './processor';

export interface BatchWorkerOptions {
  processor?: MemoryProcessor;
  logger?: Logger;
}

let runtimeInstalled = false;

/** Written by `npm run build` (scripts/bundleWorkflows.ts). */
export const WORKFLOW_BUNDLE_PATH = path.join(__dirname, 'workflow-bundle.js');

/** A Temporal worker for the batch task queue, talking to Parse Server with the master key. */
export async function createBatchWorker(config: Config, options: BatchWorkerOptions = {}): Promise<Worker> {
  const log = options.logger ?? createLogger(config.LOG_LEVEL, { component: 'worker' });
  if (!runtimeInstalled) {
    Runtime.install({
      logger: temporalLogger(log),
      telemetryOptions: {
        logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
        // Temporal's worker metrics (task slots, poll and activity latencies) at http://HOST:WORKER_METRICS_PORT/metrics.
        ...(config.WORKER_METRICS_PORT ? { metrics: { prometheus: { bindAddress: `${config.HOST}:${config.WORKER_METRICS_PORT}`, countersTotalSuffix: true, useSecondsForDurations: true } } } : {}),
      },
    });
    runtimeInstalled = true;
  }
  const endpoint = parseEndpoint(config);
  Parse.initialize(endpoint.appId);
  Parse.masterKey = endpoint.masterKey;
  Parse.serverURL = endpoint.serverURL;
  useNodeHttpForParse(endpoint);

  const connection = await NativeConnection.connect(temporalConnectionOptions(config));
  return Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    // The prebuilt bundle where there is one; otherwise the worker bundles the workflows as it starts.
    ...(fs.existsSync(WORKFLOW_BUNDLE_PATH) ? { workflowBundle: { codePath: WORKFLOW_BUNDLE_PATH } } : { workflowsPath: require.resolve('./workflows') }),
    activities: createActivities({ config, endpoint, processor: options.processor ?? loadProcessor(config.MEMORY_PROCESSOR_MODULE), log }),
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    shutdownGraceTime: '10s',
  });
}

/** Temporal's own log lines, as structured JSON through our logger. */
function temporalLogger(log: Logger) {
  const write = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, meta?: Record<string, unknown>) => log[level](message, { source: 'temporal', ...meta });
  return {
    log: (level: string, message: string, meta?: Record<string, unknown>) => {
      const mapped = level === 'TRACE' || level === 'DEBUG' ? 'debug' : level === 'WARN' ? 'warn' : level === 'ERROR' ? 'error' : 'info';
      write(mapped)(message, meta);
    },
    trace: write('debug'),
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
  };
}
