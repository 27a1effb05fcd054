#!/usr/bin/env node
/**
 * `memory-batch`: imports a memories file of any size through the REST route (streamed as gzip
 * NDJSON), follows the batch with a progress bar, and reads its per-item results; `memory-batch worker`
 * runs a batch worker.
 * Exit codes: 0 success, 1 finished with failures or an error, 2 usage error.
 */
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { BATCH_STATUSES, type BatchMemoryResponse, type BatchStatus, type BatchStatusResponse, MAX_PAGE_SIZE, STREAM_PROCESSING_MODES, type StreamProcessing } from '../schema/memory';
import { BatchApiError, BatchMemoryClient, BatchWaitTimeoutError, DEFAULT_APP_ID, DEFAULT_SERVER_URL, MemoriesDocumentError, isFinished, jsonDocumentToNdjson } from '.';
import { serveMcpOverStdio } from './mcp';

const EXIT = { success: 0, failure: 1, usage: 2 } as const;
/** Without a terminal, a progress line at most this often (and at every status change). */
const PLAIN_PROGRESS_INTERVAL_MS = 2000;

/** The command line is wrong (exit code 2), as opposed to a batch or server problem (exit code 1). */
class UsageError extends Error {}

interface ConnectionOptions {
  server: string;
  appId: string;
  sessionToken?: string;
  masterKey?: string;
  userId?: string;
  /** One JSON object on standard output instead of the text summary. */
  json?: boolean;
}

interface FollowOptions extends ConnectionOptions {
  timeout?: number;
}

interface ImportOptions extends FollowOptions {
  namespace?: string;
  workspaceId?: string;
  metadata?: Record<string, unknown>;
  format?: 'jsonl' | 'json';
  idempotencyKey?: string;
  process?: StreamProcessing;
  async?: boolean;
}

type BatchView = BatchStatusResponse | BatchMemoryResponse;

/** A JSON object given on the command line; the server checks its limits. */
function jsonObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError('must be a JSON object, e.g. {"source": "crm"}');
  return value as Record<string, unknown>;
}

function clientOf(options: ConnectionOptions, submitting = false): BatchMemoryClient {
  const connection = { serverUrl: options.server, appId: options.appId };
  if (options.sessionToken) return new BatchMemoryClient({ ...connection, auth: { sessionToken: options.sessionToken } });
  if (options.masterKey) {
    if (submitting && !options.userId) throw new UsageError('--user-id is required with the master key: it names the user the memories belong to');
    return new BatchMemoryClient({ ...connection, auth: { masterKey: options.masterKey, userId: options.userId } });
  }
  throw new UsageError('no credentials: pass --session-token (or set MEMORY_BATCH_SESSION_TOKEN), or --master-key (PARSE_MASTER_KEY) with --user-id');
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Progress on stderr: a bar on a terminal, plain lines otherwise (logs, pipes, CI). */
class ProgressDisplay {
  private bar: SingleBar | undefined;
  private lastLineAt = 0;
  private lastStatus = '';

  constructor(private readonly stream: NodeJS.WriteStream) {}

  uploadStarted(name: string, sizeBytes: number | undefined): void {
    if (this.stream.isTTY && sizeBytes) {
      this.bar = this.newBar('upload     [{bar}] {percentage}% | {uploaded} of {size}');
      this.bar.start(sizeBytes, 0, { uploaded: formatBytes(0), size: formatBytes(sizeBytes) });
    } else {
      this.line(`uploading ${name}${sizeBytes === undefined ? '' : ` (${formatBytes(sizeBytes)})`}`);
    }
  }

  uploaded(bytes: number): void {
    this.bar?.update(bytes, { uploaded: formatBytes(bytes) });
  }

  accepted(bytes: number, batch: BatchMemoryResponse, replayed: boolean, following: boolean): void {
    this.stop();
    const how = replayed ? 'matched by its idempotency key (no new batch)' : 'accepted';
    this.line(`uploaded ${formatBytes(bytes)}; batch ${batch.batch_id} ${how}: ${batch.total} memories`);
    if (following && !isFinished(batch)) this.line(`interrupting leaves the batch running; follow it with: memory-batch wait ${batch.batch_id}`);
  }

  processing(status: BatchStatusResponse): void {
    const done = status.processed + status.failed;
    const values = { processed: status.processed, failed: status.failed, status: status.status };
    if (this.stream.isTTY) {
      if (!this.bar) {
        this.bar = this.newBar('processing [{bar}] {percentage}% | {value}/{total} | processed {processed}, failed {failed} | {status}');
        this.bar.start(status.total, done, values);
      } else {
        this.bar.update(done, values);
      }
      return;
    }
    if (status.status !== this.lastStatus || isFinished(status) || Date.now() - this.lastLineAt >= PLAIN_PROGRESS_INTERVAL_MS) {
      this.lastStatus = status.status;
      this.line(`${status.status}: ${done}/${status.total} (processed ${status.processed}, failed ${status.failed})`);
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private newBar(format: string): SingleBar {
    return new SingleBar({ stream: this.stream, format, hideCursor: true, etaBuffer: 50 }, Presets.shades_classic);
  }

  private line(text: string): void {
    this.lastLineAt = Date.now();
    this.stream.write(`${text}\n`);
  }
}

/** 0 when the batch is still running (asked not to wait) or completed with every memory stored. */
function exitCodeOf(batch: BatchView): number {
  if (!isFinished(batch)) return EXIT.success;
  if (batch.status === 'deleted') return EXIT.success;
  return batch.status === 'completed' && batch.failed === 0 ? EXIT.success : EXIT.failure;
}

function printSummary(client: BatchMemoryClient, batch: BatchView, startedAt: number, json = false): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(batch)}\n`);
    return;
  }
  const id = batch.batch_id;
  const error = 'results' in batch ? batch.errors?.find((e) => !e.startsWith('memories[')) : batch.error;
  const rows: [string, string | number][] = [
    ['batch', id],
    ['status', batch.status],
    ['total', batch.total],
    ['successful', batch.processed],
    ['failed', batch.failed],
    ['duration', `${((Date.now() - startedAt) / 1000).toFixed(1)} s`],
    ...(error ? [['error', error] as [string, string]] : []),
    'deleted_memories' in batch && batch.deleted_memories !== undefined
      ? ['removed', `${batch.deleted_memories} memories${batch.status === 'deleted' ? '' : ' (deleting)'}`]
      : isFinished(batch)
        ? ['results', `memory-batch results ${id}${batch.failed ? ' --failed' : ''}  (GET ${client.resultsUrl(id)})`]
        : ['follow', `memory-batch wait ${id}`],
  ];
  process.stdout.write(rows.map(([name, value]) => `${name.padEnd(11)}${value}\n`).join(''));
}

/** The memories to upload: a file (its size known, for the progress bar) or standard input. */
function openInput(file: string): { chunks: AsyncIterable<Buffer>; sizeBytes?: number; name: string } {
  if (file === '-') return { chunks: process.stdin, name: 'standard input' };
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (!stat.isFile()) throw new UsageError(`${file} is not a file`);
  return { chunks: fs.createReadStream(file, { highWaterMark: 256 * 1024 }), sizeBytes: stat.size, name: file };
}

async function* counted(chunks: AsyncIterable<Buffer>, onBytes: (bytes: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    onBytes(chunk.length);
    yield chunk;
  }
}

/** Follows a batch until it finishes (or the timeout passes), then prints the summary. */
async function follow(client: BatchMemoryClient, batchId: string, options: FollowOptions, display: ProgressDisplay, startedAt: number): Promise<number> {
  let final: BatchStatusResponse;
  try {
    final = await client.wait(batchId, { timeoutMs: options.timeout === undefined ? undefined : options.timeout * 1000, onProgress: (status) => display.processing(status) });
  } catch (error) {
    if (!(error instanceof BatchWaitTimeoutError)) throw error;
    display.stop();
    process.stderr.write(`memory-batch: ${error.message}; it keeps running\n`);
    printSummary(client, error.lastStatus ?? (await client.get(batchId)), startedAt, options.json);
    return EXIT.failure;
  }
  display.stop();
  printSummary(client, final, startedAt, options.json);
  return exitCodeOf(final);
}

async function importMemories(file: string, options: ImportOptions): Promise<number> {
  const startedAt = Date.now();
  const client = clientOf(options, true);
  const format = options.format ?? (file.toLowerCase().endsWith('.json') ? 'json' : 'jsonl');
  const input = openInput(file);
  const display = new ProgressDisplay(process.stderr);
  let uploadedBytes = 0;
  display.uploadStarted(input.name, input.sizeBytes);
  try {
    const bytes = counted(input.chunks, (n) => display.uploaded((uploadedBytes += n)));
    const { batch, replayed } = await client.addNdjson(
      format === 'json' ? jsonDocumentToNdjson(bytes) : bytes,
      { namespace: options.namespace, workspace_id: options.workspaceId, metadata: options.metadata, process: options.process },
      { idempotencyKey: options.idempotencyKey, wait: false },
    );
    display.accepted(uploadedBytes, batch, replayed, !options.async);
    if (options.async || isFinished(batch)) {
      printSummary(client, batch, startedAt, options.json);
      return exitCodeOf(batch);
    }
    return await follow(client, batch.batch_id, options, display, startedAt);
  } finally {
    display.stop();
  }
}

async function waitForBatch(batchId: string, options: FollowOptions): Promise<number> {
  const display = new ProgressDisplay(process.stderr);
  try {
    return await follow(clientOf(options), batchId, options, display, Date.now());
  } finally {
    display.stop();
  }
}

async function writeLine(line: string): Promise<void> {
  if (!process.stdout.write(`${line}\n`)) await once(process.stdout, 'drain');
}

async function printResults(batchId: string, options: ConnectionOptions & { failed?: boolean }): Promise<number> {
  for await (const result of clientOf(options).results(batchId, options.failed ? { status: 'failed' } : {})) await writeLine(JSON.stringify(result));
  return EXIT.success;
}

async function printStatus(batchId: string, options: ConnectionOptions): Promise<number> {
  await writeLine(JSON.stringify(await clientOf(options).get(batchId), null, 2));
  return EXIT.success;
}

interface ListOptions extends ConnectionOptions {
  status?: BatchStatus;
  namespace?: string;
  createdAfter?: string;
  createdBefore?: string;
  limit?: number;
  after?: string;
}

/** One page of the user's batches as JSON (the REST route's answer: next_cursor names the next page). */
async function listBatches(options: ListOptions): Promise<number> {
  const page = await clientOf(options).list({
    status: options.status,
    namespace: options.namespace,
    created_after: options.createdAfter,
    created_before: options.createdBefore,
    limit: options.limit,
    after: options.after,
  });
  await writeLine(JSON.stringify(page, null, 2));
  return EXIT.success;
}

async function cancelBatch(batchId: string, options: ConnectionOptions): Promise<number> {
  const client = clientOf(options);
  const startedAt = Date.now();
  printSummary(client, await client.cancel(batchId), startedAt, options.json);
  return EXIT.success;
}

/** Undoes an import, and follows the deletion until the batch is `deleted` (or not, with --async). */
async function deleteBatch(batchId: string, options: FollowOptions & { async?: boolean }): Promise<number> {
  const client = clientOf(options);
  const startedAt = Date.now();
  const started = await client.delete(batchId);
  if (options.async || isFinished(started)) {
    printSummary(client, started, startedAt, options.json);
    return exitCodeOf(started);
  }
  const display = new ProgressDisplay(process.stderr);
  try {
    return await follow(client, batchId, options, display, startedAt);
  } finally {
    display.stop();
  }
}

/** Retries the items a finished batch did not store, as a new batch, and follows it (or not, with --async). */
async function retryBatch(batchId: string, options: FollowOptions & { async?: boolean }): Promise<number> {
  const client = clientOf(options);
  const startedAt = Date.now();
  const retry = await client.retryFailed(batchId);
  process.stderr.write(`memory-batch: batch ${retry.batch_id} retries the ${retry.total} items batch ${batchId} did not store\n`);
  if (options.async || isFinished(retry)) {
    printSummary(client, retry, startedAt, options.json);
    return exitCodeOf(retry);
  }
  const display = new ProgressDisplay(process.stderr);
  try {
    return await follow(client, retry.batch_id, options, display, startedAt);
  } finally {
    display.stop();
  }
}

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return number;
}

function positiveSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new InvalidArgumentError('must be a positive number of seconds');
  return seconds;
}

/** The installed package's version (dist/client/cli.js reads the package.json two folders up). */
function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

/** The command line; `done` receives the exit code of the command that ran. */
function buildProgram(done: (exitCode: number) => void): Command {
  const program = new Command('memory-batch')
    .description('Import memories through the batch memory REST route, follow batches and read their results.')
    .version(packageVersion(), '--version', "the package's version")
    .addOption(new Option('--server <url>', 'where the server listens').env('MEMORY_BATCH_SERVER').default(DEFAULT_SERVER_URL))
    .addOption(new Option('--session-token <token>', 'session token of the user the memories belong to').env('MEMORY_BATCH_SESSION_TOKEN'))
    .addOption(new Option('--master-key <key>', 'act with the master key instead (imports need --user-id)').env('PARSE_MASTER_KEY'))
    .addOption(new Option('--user-id <id>', 'user the master key acts for'))
    .addOption(new Option('--app-id <id>', 'Parse application id').env('PARSE_APP_ID').default(DEFAULT_APP_ID))
    .option('--json', 'print one JSON object (the batch or the page) on standard output instead of text')
    .exitOverride()
    .showHelpAfterError('(memory-batch --help for usage)');

  const run =
    <A extends unknown[]>(command: (...args: A) => Promise<number>) =>
    async (...args: A) => {
      done(await command(...args));
    };
  const timeout = new Option('--timeout <seconds>', 'stop following after this long (the batch keeps running)').argParser(positiveSeconds);

  program
    .command('import')
    .description('upload memories (JSON Lines, or a JSON array / {"memories": [...]}; - reads standard input) and follow the batch')
    .argument('<file>', 'file.jsonl, file.json, or - for standard input')
    .option('--namespace <name>', 'namespace of the memories')
    .option('--workspace-id <id>', 'workspace of the memories')
    .option('--metadata <json>', "the batch's own metadata, a JSON object (returned in its status, listing and webhook)", jsonObject)
    .addOption(new Option('--format <format>', 'input format (default: json for *.json, jsonl otherwise)').choices(['jsonl', 'json']))
    .option('--idempotency-key <key>', 'a repeat with the same key and file answers with the same batch (resume)')
    .addOption(
      new Option(
        '--process <when>',
        'after_upload (the default): all or nothing, processed once the whole file is uploaded and valid; while_uploading: each part processed as it is stored, and a bad line later ends the batch failed, holding the memories before it',
      ).choices([...STREAM_PROCESSING_MODES]),
    )
    .option('--async', 'return once the batch is accepted, with its id')
    .addOption(timeout)
    .action(run((file: string, _options: ImportOptions, command: Command) => importMemories(file, command.optsWithGlobals<ImportOptions>())));

  program
    .command('wait')
    .description('follow a batch until it finishes, then print its summary')
    .argument('<id>', 'batch id')
    .addOption(timeout)
    .action(run((id: string, _options: FollowOptions, command: Command) => waitForBatch(id, command.optsWithGlobals<FollowOptions>())));

  program
    .command('status')
    .description("print a batch's status, counts and timestamps as JSON")
    .argument('<id>', 'batch id')
    .action(run((id: string, _options: ConnectionOptions, command: Command) => printStatus(id, command.optsWithGlobals<ConnectionOptions>())));

  program
    .command('list')
    .description('print a page of your batches, newest first, as JSON; --after takes the next_cursor it printed')
    .addOption(new Option('--status <status>', 'only batches in this status').choices([...BATCH_STATUSES]))
    .option('--namespace <name>', 'only batches of this namespace')
    .option('--created-after <time>', 'only batches created after this ISO 8601 time')
    .option('--created-before <time>', 'only batches created before this ISO 8601 time')
    .option('--limit <n>', `batches per page (at most ${MAX_PAGE_SIZE})`, positiveInteger)
    .option('--after <cursor>', 'the next_cursor of the page before')
    .action(run((_options: ListOptions, command: Command) => listBatches(command.optsWithGlobals<ListOptions>())));

  program
    .command('retry')
    .description('start a new batch of the items a finished batch did not store, and follow it')
    .argument('<id>', 'batch id of the finished batch')
    .option('--async', 'return once the retry batch is accepted, with its id')
    .addOption(timeout)
    .action(run((id: string, _options: FollowOptions, command: Command) => retryBatch(id, command.optsWithGlobals<FollowOptions & { async?: boolean }>())));

  program
    .command('results')
    .description("print a finished batch's per-item results as JSON Lines")
    .argument('<id>', 'batch id')
    .option('--failed', 'only the items that failed')
    .action(run((id: string, _options: { failed?: boolean }, command: Command) => printResults(id, command.optsWithGlobals<ConnectionOptions & { failed?: boolean }>())));

  program
    .command('cancel')
    .description('cancel a batch; memories written so far stay')
    .argument('<id>', 'batch id')
    .action(run((id: string, _options: ConnectionOptions, command: Command) => cancelBatch(id, command.optsWithGlobals<ConnectionOptions>())));

  program
    .command('delete')
    .description('undo an import: remove every memory the batch created and its stored files (a running batch is cancelled first); waits until it is deleted')
    .argument('<id>', 'batch id')
    .option('--async', 'return once the deletion has begun')
    .addOption(timeout)
    .action(run((id: string, _options: FollowOptions, command: Command) => deleteBatch(id, command.optsWithGlobals<FollowOptions & { async?: boolean }>())));

  program
    .command('worker')
    .description('run a batch worker until SIGINT or SIGTERM, configured as the server is (PARSE_*, TEMPORAL_*, MEMORY_PROCESSOR_MODULE, ...)')
    .action(
      run(async () => {
        // Loaded on demand: the other commands need neither Temporal's worker nor its native runtime.
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { runWorker } = require('../worker/main') as typeof import('../worker/main');
        await runWorker();
        // Temporal's native runtime keeps the process alive after the worker stopped.
        return process.exit(EXIT.success);
      }),
    );

  program
    .command('mcp')
    .description(
      'serve the Model Context Protocol on standard input and output, for an agent on this machine (tools: import_memories, check_memories, get_batch, list_batches, get_batch_failures, cancel_batch, retry_failed, delete_batch)',
    )
    .option('--allow-dir <dir...>', 'folders import_memories may read files from, besides the working directory (links out of them are refused)')
    .option('--master-key-mode', "serve with the master key (for --user-id): the agent can then read, cancel, retry and delete any user's batch, which every tool description says")
    .action(
      run(async (options: { allowDir?: string[]; masterKeyMode?: boolean }, command: Command) => {
        const connection = command.optsWithGlobals<ConnectionOptions>();
        // A master key in the environment (PARSE_MASTER_KEY, set for the server) must not hand an agent every tenant's batches unasked.
        const withMasterKey = !connection.sessionToken && Boolean(connection.masterKey);
        if (withMasterKey && !options.masterKeyMode) {
          throw new UsageError("mcp with the master key acts on every user's batches: pass --master-key-mode to mean it, or --session-token to act as one user");
        }
        await serveMcpOverStdio(clientOf(connection, true), { allowedDirs: [process.cwd(), ...(options.allowDir ?? [])], ...(withMasterKey ? { masterKeyFor: connection.userId } : {}) });
        return EXIT.success;
      }),
    );

  return program;
}

function report(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.success : EXIT.usage;
  if (error instanceof UsageError) {
    process.stderr.write(`memory-batch: ${error.message}\n`);
    return EXIT.usage;
  }
  if (error instanceof BatchApiError) {
    const status = error.status ? `HTTP ${error.status} ` : '';
    process.stderr.write(`memory-batch: ${status}${error.code}: ${error.message}\n`);
  } else if (error instanceof MemoriesDocumentError) {
    process.stderr.write(`memory-batch: the input ${error.message}\n`);
  } else {
    process.stderr.write(`memory-batch: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  return EXIT.failure;
}

async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.success;
  try {
    await buildProgram((code) => (exitCode = code)).parseAsync(argv);
    return exitCode;
  } catch (error) {
    return report(error);
  }
}

// A reader that stops early (`| head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.success);
  throw error;
});
// Interrupted (Ctrl-C, a supervisor's SIGTERM): exit as shells report a command the signal stopped (130, 143), after
// saying so. A batch already accepted keeps running; the same import with its --idempotency-key follows it again.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.once(signal, () => {
    if (process.stderr.isTTY) process.stderr.write('\x1B[?25h\n'); // the progress bar hid the cursor
    process.stderr.write(`memory-batch: interrupted (${signal}); a batch already accepted keeps running\n`);
    process.exit(code);
  });
}
void main(process.argv).then((code) => {
  process.exitCode = code;
});
