/**
 * `npm start`: the whole product locally on embedded defaults. Data persists
 * under DATA_DIR; DATABASE_URI or TEMPORAL_ADDRESS replace the embedded parts.
 * `npm run cluster` (`--cluster`): two Parse Server instances behind a round-robin
 * proxy on PORT, two workers and Redis, on the same URLs.
 *
 * A Parse Server instance, worker, Temporal dev server or Redis that crashes is started again with
 * exponential backoff while the rest keeps running; one that crashes 5 times within a minute stops the
 * stack, saying which and why. After the banner, every line printed is one JSON object.
 */
import { ConfigError } from '../config';
import { JsonLineWriter } from './jsonLines';
import { startLocalStack, type SupervisionEvent } from './stack';
import { CrashLoopError, describeExit } from './supervision';
import { TemporalCliNotFoundError } from './temporalCli';

const lines = new JsonLineWriter((line) => process.stdout.write(`${line}\n`));

/** One line of the stack's own, as the processes' lines are. */
function say(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  lines.flushAll();
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, process: 'stack', ...fields })}\n`);
}

function crashLoopFields(error: CrashLoopError): Record<string, unknown> {
  const { process: name, crashes, windowMs, lastExit, lastLines, reason } = error;
  return { crashed: name, crashes, windowMs, exitCode: lastExit.exitCode, signal: lastExit.signal, ...(reason ? { reason } : {}), lastLines };
}

function onSupervisionEvent(event: SupervisionEvent): void {
  if (event.kind === 'crashed') {
    const { kind: _kind, process: name, ...fields } = event;
    say('warn', `${name} crashed (${describeExit(event)}); restarting it in ${event.restartInMs} ms`, { crashed: name, ...fields });
  } else if (event.kind === 'restarted') {
    say('info', `${event.process} restarted`, { restarted: event.process, pid: event.pid });
  } else {
    say('error', event.error.message.split('\n')[0], crashLoopFields(event.error));
    process.exit(1);
  }
}

async function main(): Promise<void> {
  const cluster = process.argv.includes('--cluster') ? { instances: 2, workers: 2 } : {};
  const stack = await startLocalStack({
    ...cluster,
    output: { onLine: (name, stream, line) => lines.line(name, stream, line) },
    onStatus: (message) => say('info', message),
    supervise: { onEvent: onSupervisionEvent },
  });
  const { urls, config } = stack;
  lines.flushAll();
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
      'A crashed process is restarted; the log follows, one JSON object per line. Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say('info', `${signal}: stopping`);
    await stack.stop();
    lines.flushAll();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((error: unknown) => {
  lines.flushAll();
  if (error instanceof CrashLoopError) {
    say('error', error.message.split('\n')[0], crashLoopFields(error));
  } else {
    const known = error instanceof ConfigError || error instanceof TemporalCliNotFoundError;
    process.stderr.write(`${known ? (error as Error).message : ((error as Error).stack ?? String(error))}\n`);
  }
  process.exit(1);
});
