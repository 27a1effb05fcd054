/** Parse Server process entry: Parse Server, LiveQuery, Dashboard and the REST route on one port. */
import { ConfigError, loadConfig } from '../config';
import { createLogger, routeConsoleTo } from '../config/log';
import { startParseApp } from '../cloud/server';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL, { component: 'parse-server' });
  routeConsoleTo(log);
  const parseApp = await startParseApp(config, { logger: log });
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await parseApp.close().catch((error: unknown) => log.error('shutdown failed', { error }));
    process.exit(0);
  };
  process.on('SIGTERM', () => void close());
  process.on('SIGINT', () => void close());
  // The parent (npm start, tests) may die without signalling: stop with it.
  process.on('disconnect', () => void close());
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof ConfigError ? error.message : ((error as Error).stack ?? String(error))}\n`);
  process.exit(1);
});
