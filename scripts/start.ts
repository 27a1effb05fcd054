/**
 * `npm start`: the whole product locally on embedded defaults. Data persists
 * under DATA_DIR; DATABASE_URI or TEMPORAL_ADDRESS replace the embedded parts.
 * `npm run cluster` (`--cluster`): two Parse Server instances behind a round-robin
 * proxy on PORT, two workers and Redis, on the same URLs.
 */
import { ConfigError } from '../config';
import { startLocalStack } from './stack';
import { TemporalCliNotFoundError } from './temporalCli';

async function main(): Promise<void> {
  const cluster = process.argv.includes('--cluster') ? { instances: 2, workers: 2 } : {};
  const stack = await startLocalStack({ ...cluster, output: 'inherit', onStatus: (message) => process.stdout.write(`[stack] ${message}\n`) });
  const { urls, config } = stack;
  process.stdout.write(
    [
      '',
      'Batch memory stack is up.',
      `  API        ${urls.api}`,
      `  REST       http://localhost:${config.PORT}/api/v1/memory/batch`,
      `  Dashboard  ${urls.dashboard}  (user ${config.DASHBOARD_USER})`,
      ...(urls.temporalUI ? [`  Temporal   ${urls.temporalUI}`] : [`  Temporal   ${urls.temporal}`]),
      ...(stack.instanceURLs.length > 1 ? [`  Instances  ${stack.instanceURLs.join(', ')} (round-robin on port ${config.PORT})`, `  Redis      ${urls.redis}`] : []),
      '',
      'Try it (sign up a user, then submit a batch through the Cloud Function):',
      `  TOKEN=$(curl -s -X POST ${urls.api}/users -H 'X-Parse-Application-Id: ${config.PARSE_APP_ID}' -H 'Content-Type: application/json' \\`,
      `    -d '{"username":"demo-'$RANDOM'","password":"demo-password"}' | sed -E 's/.*"sessionToken":"([^"]+)".*/\\1/')`,
      `  curl -s -X POST ${urls.api}/functions/addMemoryBatch -H 'X-Parse-Application-Id: ${config.PARSE_APP_ID}' \\`,
      `    -H "X-Parse-Session-Token: $TOKEN" -H 'Content-Type: application/json' \\`,
      `    -d '{"namespace":"demo","memories":[{"content":"first memory"},{"content":"second memory","tags":["demo"]}]}'`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`[stack] ${signal}: stopping\n`);
    await stack.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  for (const [name, child] of stack.processes) {
    child.on('exit', (code) => {
      if (!stopping) {
        process.stderr.write(`[stack] ${name} exited unexpectedly (code ${code}); stopping\n`);
        void shutdown('exit');
      }
    });
  }
}

main().catch((error: unknown) => {
  const known = error instanceof ConfigError || error instanceof TemporalCliNotFoundError;
  process.stderr.write(`${known ? (error as Error).message : (error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
