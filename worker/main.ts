/** Worker process entry: `npm run worker`, or `memory-batch worker` from the installed package. Stops gracefully on SIGINT / SIGTERM. */
import { ConfigError, loadConfig } from '../config';
import { createLogger, routeConsoleTo } from '../config/log';
import { createBatchWorker } from './worker';

/** Runs one worker with the configuration of the environment until it is told to stop. */
export async function runWorker(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env);
  const log = createLogger(config.LOG_LEVEL, { component: 'worker' });
  const worker = await createBatchWorker(config, { logger: log });
  // The parent (npm start, tests) may die without signalling: stop with it.
  process.on('disconnect', () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
  });
  // A parent that dies without passing its signal on (the shell npx runs the command in, on SIGTERM) leaves
  // this process re-parented: it stops as if signalled.
  const parent = process.ppid;
  const orphanCheck = setInterval(() => {
    if (process.ppid === parent || worker.getState() !== 'RUNNING') return;
    log.warn('parent process gone: stopping', { parent });
    worker.shutdown();
  }, 500).unref();
  log.info('worker polling', { taskQueue: config.TEMPORAL_TASK_QUEUE, namespace: config.TEMPORAL_NAMESPACE, pid: process.pid });
  try {
    await worker.run();
  } finally {
    clearInterval(orphanCheck);
  }
  log.info('worker stopped');
}

if (require.main === module) {
  const main = async () => {
    // As a process of its own (not inside a host's), what libraries print through console is logged as JSON too.
    routeConsoleTo(createLogger(loadConfig().LOG_LEVEL, { component: 'worker' }));
    await runWorker();
  };
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${error instanceof ConfigError ? error.message : ((error as Error).stack ?? String(error))}\n`);
      process.exit(1);
    },
  );
}
