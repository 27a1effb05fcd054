import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { type IpNetwork, parseNetwork } from '../schema/network';

/** Local-only secrets: good enough on a laptop, refused in production and whenever HOST is not a loopback address. */
export const LOCAL_SECRETS = {
  PARSE_MASTER_KEY: 'local-master-key-change-me',
  DASHBOARD_PASSWORD: 'local-dashboard-password',
  FILES_ENCRYPTION_KEY: 'local-files-encryption-key-change-me',
} as const;

const MB = 1024 * 1024;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Accepts milliseconds as a number or a string such as "2h", "30s", "1500ms". */
const duration = z.preprocess(
  (raw) => {
    if (typeof raw !== 'string') return raw;
    const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(raw);
    if (!match) return Number.NaN;
    return Number(match[1]) * DURATION_UNITS[match[2] ?? 'ms'];
  },
  z.number({ error: 'must be a duration such as 1500ms, 30s, 5m or 2h' }).int().positive(),
);

const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

const port = integer(1, 65535);
const url = z.url({ error: 'must be a URL' });
const optionalString = z.string().trim().min(1).optional();
const boolean = z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' }).transform((v) => v === 'true' || v === '1' || v === 'yes');

/** A comma-separated list of CIDRs (a bare address is one host). */
function networkList(list: string, ctx: z.RefinementCtx): IpNetwork[] {
  const networks: IpNetwork[] = [];
  for (const cidr of list.split(',')) {
    const network = parseNetwork(cidr);
    if (network) networks.push(network);
    else ctx.addIssue({ code: 'custom', message: `must be comma-separated CIDRs such as 127.0.0.3/32 or fd12:3456::/48 ("${cidr.trim()}" is not one)` });
  }
  return networks;
}

/**
 * Every setting, keyed by the environment variable that sets it.
 * The README's configuration table is checked against this object.
 */
export const configVariables = {
  NODE_ENV: {
    schema: z.enum(['development', 'test', 'production']).default('development'),
    doc: 'production refuses local default secrets and requires DATABASE_URI, TEMPORAL_ADDRESS and METRICS_TOKEN',
  },
  PORT: { schema: port.default(1337), doc: 'HTTP port of Parse Server, REST route, LiveQuery and Dashboard' },
  HOST: { schema: z.string().default('127.0.0.1'), doc: 'interface the HTTP server listens on; anything but localhost or a loopback address refuses the local default secrets' },
  PARSE_SERVER_URL: { schema: url.optional(), doc: 'URL workers and Cloud Code use to reach Parse Server (defaults to http://127.0.0.1:PORT/parse)' },
  PUBLIC_SERVER_URL: { schema: url.optional(), doc: 'public Parse Server URL (defaults to http://localhost:PORT/parse)' },
  PARSE_APP_ID: { schema: z.string().min(1).default('batch-memory'), doc: 'Parse application id' },
  PARSE_MASTER_KEY: { schema: z.string().min(16, { error: 'must be at least 16 characters' }).default(LOCAL_SECRETS.PARSE_MASTER_KEY), doc: 'Parse master key (secret)' },
  TRUST_PROXY: {
    schema: z.string().optional(),
    doc: "comma-separated addresses or CIDRs of proxies in front of the server (Express 'trust proxy'): a request from one of them is taken to come from the address its X-Forwarded-For names, for PARSE_MASTER_KEY_IPS and per-address limits. Unset: the connection's own address. npm run cluster sets 127.0.0.1, its proxy, on its instances",
  },
  PARSE_MAX_UPLOAD_SIZE: {
    schema: integer(64 * 1024).default(64 * MB),
    doc: "largest file in bytes Parse Server's files route accepts (its maxUploadSize); the worker writes a batch's results in files below it. Set it the same everywhere",
  },
  PARSE_MASTER_KEY_IPS: { schema: z.string().default('127.0.0.1/32,::1/128'), doc: 'comma-separated CIDRs allowed to use the master key (workers must be inside)' },
  DATABASE_URI: {
    schema: z
      .string()
      .regex(/^(postgres(ql)?|mongodb(\+srv)?):\/\//, { error: 'must start with postgres://, postgresql:// or mongodb://' })
      .optional(),
    doc: 'database; unset locally = embedded PostgreSQL under DATA_DIR',
  },
  DATABASE_FERRETDB: {
    schema: boolean.default(false),
    doc: "the mongodb:// DATABASE_URI is FerretDB 1.x, which lacks collation, TTL and partial indexes. Costs: a user name or email taken in another letter case is found by a pattern scan of _User, not an index; rows of Parse Server's own idempotency (_Idempotency, when its idempotencyOptions are on) never expire, and it updates a document by reading and writing it back, which one Parse Server's updates take turns for: run one instance",
  },
  DATA_DIR: { schema: z.string().min(1).default('.data'), doc: 'folder for the embedded PostgreSQL cluster, Temporal dev server database and files' },
  EMBEDDED_POSTGRES_PORT: { schema: port.default(54329), doc: 'port of the embedded PostgreSQL' },
  LOCAL_REDIS_PORT: { schema: port.default(6379), doc: 'port of the redis-server `npm run cluster` starts when REDIS_URL is unset' },
  TEMPORAL_ADDRESS: {
    schema: z
      .string()
      .regex(/^[^\s:]+:\d+$/, { error: 'must be host:port' })
      .optional(),
    doc: 'Temporal frontend; unset locally = Temporal CLI dev server',
  },
  TEMPORAL_NAMESPACE: { schema: z.string().min(1).default('default'), doc: 'Temporal namespace' },
  TEMPORAL_TASK_QUEUE: { schema: z.string().min(1).default('batch-memory'), doc: 'task queue the workers poll' },
  TEMPORAL_API_KEY: { schema: optionalString, doc: 'API key for Temporal Cloud (enables TLS)' },
  TEMPORAL_TLS: { schema: boolean.default(false), doc: 'connect to Temporal over TLS' },
  TEMPORAL_PORT: { schema: port.default(7233), doc: 'port of the local Temporal dev server' },
  TEMPORAL_UI_PORT: { schema: port.default(8233), doc: 'port of the local Temporal web UI' },
  TEMPORAL_CLI_PATH: { schema: optionalString, doc: 'path of the temporal CLI binary for the local dev server' },
  DASHBOARD_USER: { schema: z.string().min(1).default('admin'), doc: 'Parse Dashboard user' },
  DASHBOARD_PASSWORD: { schema: z.string().min(8, { error: 'must be at least 8 characters' }).default(LOCAL_SECRETS.DASHBOARD_PASSWORD), doc: 'Parse Dashboard password (secret)' },
  DASHBOARD_COOKIE_SECRET: {
    schema: z.string().min(32, { error: 'must be at least 32 characters' }).optional(),
    doc: "secret that signs the Dashboard's session cookie, never the master key (unset: a random one per process; Dashboard sessions live in the process's memory and end with it anyway)",
  },
  DASHBOARD_LOGIN_MAX_FAILURES: {
    schema: integer(1, 1000).default(5),
    doc: 'failed Dashboard logins one client address may make in 15 minutes; its logins then answer 429 until the 15 minutes are over',
  },
  FILES_ADAPTER: {
    schema: z.enum(['default', 's3'], { error: 'must be default or s3' }).default('default'),
    doc: 'where batch and result files are stored: default = encrypted files under DATA_DIR/files (GridFS on MongoDB); s3 = the S3 bucket below, for instances that share no disk (needs the package @parse/s3-files-adapter)',
  },
  S3_BUCKET: {
    schema: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be an S3 bucket name (3–63 lowercase letters, digits, dots and hyphens)' })
      .optional(),
    doc: 'bucket of FILES_ADAPTER=s3 (created on first use if missing); keep it private: downloads go through Parse Server, which refuses batch files to all but the master key',
  },
  S3_REGION: {
    schema: z
      .string()
      .regex(/^[a-z0-9-]+$/, { error: 'must be a region name such as eu-west-1' })
      .default('us-east-1'),
    doc: 'region of the bucket',
  },
  S3_ENDPOINT: { schema: url.optional(), doc: 'endpoint of an S3-compatible server (MinIO, Ceph, …), addressed path-style; unset = AWS' },
  S3_ACCESS_KEY_ID: {
    schema: optionalString,
    doc: "access key id for the bucket (secret); unset with S3_SECRET_ACCESS_KEY = the AWS SDK's own credentials (AWS_* variables, shared config, instance or task role)",
  },
  S3_SECRET_ACCESS_KEY: { schema: optionalString, doc: 'secret access key for the bucket (secret), given with S3_ACCESS_KEY_ID' },
  S3_BUCKET_PREFIX: { schema: optionalString, doc: 'prefix of the object keys in the bucket (e.g. batch-memory/)' },
  S3_SERVER_SIDE_ENCRYPTION: {
    schema: z.enum(['AES256', 'aws:kms'], { error: 'must be AES256 or aws:kms' }).optional(),
    doc: "encryption at rest the bucket applies to each stored file (FILES_ENCRYPTION_KEY does not apply to S3); unset = the bucket's default encryption",
  },
  FILES_ENCRYPTION_KEY: {
    schema: z.string().min(16, { error: 'must be at least 16 characters' }).default(LOCAL_SECRETS.FILES_ENCRYPTION_KEY),
    doc: 'key that encrypts stored batch and result files with FILES_ADAPTER=default (secret)',
  },
  LOG_LEVEL: { schema: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'), doc: 'structured log level' },
  MAX_BATCH_SIZE: { schema: integer(1, 1_000_000).default(1000), doc: 'most memories in one batch (docs/requirements.md)' },
  MAX_MEMORY_SIZE: { schema: integer(1).default(10 * MB), doc: 'most bytes in one memory, content and metadata (docs/requirements.md)' },
  BATCH_CHUNK_SIZE: { schema: integer(1, 1000).default(10), doc: 'memories recorded together, with their results, in one BatchMemoryChunk row (docs/requirements.md)' },
  BATCH_WRITE_MAX_ITEMS: {
    schema: integer(1).default(100),
    doc: 'most memories in one write from the worker to Parse Server (whole chunks); the unit of durable progress: a retried part repeats at most one write',
  },
  BATCH_WRITE_MAX_BYTES: { schema: integer(1024).default(4 * MB), doc: 'most bytes of memories in one write (a single chunk larger than this goes alone)' },
  BATCH_WORKFLOW_TIMEOUT: { schema: duration.default(2 * 3_600_000), doc: 'longest a batch may run before it fails (docs/requirements.md: 2 hours)' },
  BATCH_DELETE_PAGE_SIZE: {
    schema: integer(1, 10_000).default(2000),
    doc: 'memories one statement removes when a batch is deleted; the unit of durable progress of a deletion (a killed worker repeats at most one)',
  },
  BATCH_FILE_EXPIRY_DAYS: { schema: integer(1).default(30), doc: 'age after which batch and result files are deleted (docs/requirements.md)' },
  BATCH_SPLIT_WARN_BYTES: { schema: integer(1).default(50 * MB), doc: 'a stored batch larger than this is logged as a warning (it is always split into parts)' },
  BATCH_PART_MAX_ITEMS: { schema: integer(1).default(1000), doc: 'most memories in one stored part file; one activity processes one part' },
  BATCH_PART_MAX_BYTES: { schema: integer(1024).default(8 * MB), doc: 'most uncompressed bytes in one stored part file' },
  BATCH_GZIP_LEVEL: { schema: integer(0, 9).default(3), doc: 'gzip level of stored part and results files (1: fastest; 9: smallest)' },
  BATCH_LOCAL_PART_MAX_ITEMS: {
    schema: integer(0).default(1000),
    doc: 'a batch of one part with at most this many memories runs it as a local activity, without an activity task round trip (0: never); a crashed worker is then noticed by the workflow task timeout (10 s) instead of the heartbeat',
  },
  BATCH_ITEM_MAX_ATTEMPTS: {
    schema: integer(1, 100).default(3),
    doc: 'attempts of a part after which a memory whose processing still throws (the memory processor, or a write refused for a reason the product cannot classify) is recorded failed (processing_failed) instead of holding the batch; a lost connection or a database outage is retried without limit',
  },
  BATCH_PART_CONCURRENCY: { schema: integer(1, 64).default(4), doc: 'parts of one batch processed in parallel' },
  BATCH_PARTS_PER_RUN: { schema: integer(1).default(200), doc: 'parts processed before the workflow continues as new (bounds history)' },
  BATCH_HEARTBEAT_TIMEOUT: { schema: duration.default(20_000), doc: 'a part activity silent for this long is retried elsewhere (how fast a crashed worker is noticed)' },
  BATCH_WAIT_TIMEOUT: { schema: duration.default(30_000), doc: 'how long addMemoryBatch waits for completion before answering with the running batch' },
  MAX_STREAM_BATCH_SIZE: { schema: integer(1, 10_000_000).default(1_000_000), doc: 'most lines (one memory each; blank lines count too) in one NDJSON upload to the REST route' },
  REST_MAX_JSON_BYTES: {
    schema: integer(1024).default(16 * MB),
    doc: 'largest JSON body the REST route and the MCP door (/mcp) accept (413 above; a parsed JSON batch costs about 6 times its size in server memory, so larger batches go as NDJSON)',
  },
  REST_MAX_STREAM_BYTES: { schema: integer(1024).default(2048 * MB), doc: 'largest NDJSON body, after decompression, the REST route accepts (413 above)' },
  REST_MAX_INFLATE_RATIO: {
    schema: integer(1).default(100),
    doc: 'most bytes a gzip NDJSON body may inflate to per compressed byte, checked once more than its longest allowed line (2 × MAX_MEMORY_SIZE + 1 KiB) is inflated (413 above)',
  },
  REST_BODY_TIMEOUT: { schema: duration.default(300_000), doc: 'longest time a request body to the REST route may take to arrive (408 after)' },
  REST_BODY_IDLE_TIMEOUT: {
    schema: duration.default(30_000),
    doc: 'longest time a request body to the REST route or /mcp may send nothing while the server waits for it (408 after): a stalled upload gives its slot back',
  },
  BATCH_UPLOAD_LOST_AFTER: {
    schema: duration.default(60_000),
    doc: 'past REST_BODY_TIMEOUT, how long a batch processed while uploading may stay receiving before its workflow seals it failed (its Parse Server stopped); covers clocks that differ between hosts',
  },
  REST_MAX_UPLOADS: { schema: integer(1).default(16), doc: 'batch uploads (REST, MCP imports, addMemoryBatch, and retries) one Parse Server process reads and stores at once (429 above)' },
  REST_MAX_UPLOADS_PER_USER: { schema: integer(1).default(8), doc: 'batch uploads one user may have being read and stored at once (429 above)' },
  REST_MAX_EVENT_STREAMS: { schema: integer(1).default(256), doc: 'open event streams (GET …/:id/events, and MCP imports that wait) one Parse Server process serves at once (429 above)' },
  REST_EVENT_STREAM_MAX_AGE: {
    schema: duration.default(600_000),
    doc: 'longest an event stream (GET …/:id/events) stays open; then it ends and the client follows again, so that a few users cannot hold the stream slots for the hours a batch runs',
  },
  REST_MAX_EVENT_STREAMS_PER_USER: { schema: integer(1).default(16), doc: 'open event streams one user may have at once (429 above)' },
  REDIS_URL: {
    schema: z
      .string()
      .regex(/^rediss?:\/\//, { error: 'must start with redis:// or rediss://' })
      .optional(),
    doc: "Redis shared by several Parse Server instances: LiveQuery events, every rate limit's count, Parse Server's user and role cache (and schema changes through the database's notifications); unset = one instance, all of it in the process",
  },
  RATE_LIMIT_WINDOW: { schema: duration.default(60_000), doc: 'window the rate limits below count in; a caller over a limit is answered 429 with Retry-After until its window ends' },
  USER_RATE_LIMIT: {
    schema: integer(1).default(600),
    doc: 'requests one user may make per RATE_LIMIT_WINDOW to Cloud Functions (/parse/functions/*), the REST route and the MCP door (/mcp) together; master-key requests are not counted',
  },
  SIGNUP_RATE_LIMIT: { schema: integer(1).default(20), doc: "sign-ups (POST /parse/users) per RATE_LIMIT_WINDOW from one client address (Parse Server's own rateLimit)" },
  LOGIN_RATE_LIMIT: {
    schema: integer(1).default(30),
    doc: "log-ins (/parse/login) per RATE_LIMIT_WINDOW from one client address, and as many password checks (/parse/verifyPassword) (Parse Server's own rateLimit)",
  },
  AUTH_FAILURE_LIMIT: {
    schema: integer(1).default(20),
    doc: 'failed authentications (bad session token, refused master key, wrong password) per RATE_LIMIT_WINDOW from one client address; past it, every request from that address is answered 429 before authentication',
  },
  ALLOW_ANONYMOUS_USERS: {
    schema: boolean.default(false),
    doc: "let clients sign up anonymously (Parse authData.anonymous) on the product's own server, or a host that opts into hardenedOptions() (otherwise the host's enableAnonymousUsers decides); anonymous users can never submit batches",
  },
  RECONCILE_INTERVAL: { schema: duration.default(30_000), doc: 'how often Parse Server starts the workflows of pending batches (accepted while Temporal was unreachable)' },
  TEMPORAL_START_TIMEOUT: {
    schema: duration.default(5_000),
    doc: "longest a submission waits for Temporal to start the batch's workflow; past it the stored batch is answered as pending and the reconciler starts it",
  },
  BATCH_EXPIRY_INTERVAL: { schema: duration.default(3_600_000), doc: 'how often the Temporal Schedule deletes expired batch and result files' },
  WEBHOOK_MAX_ATTEMPTS: { schema: integer(1, 100).default(10), doc: 'delivery attempts of a webhook (exponential backoff from 1s, at most 5m apart)' },
  WEBHOOK_TIMEOUT: { schema: duration.default(10_000), doc: 'how long one webhook delivery waits for the receiver' },
  WEBHOOK_ALLOWED_NETWORKS: {
    schema: z.string().trim().min(1).transform(networkList).optional(),
    doc: 'comma-separated CIDRs webhooks may reach although they are loopback, private or otherwise restricted (unset: none; for local development only)',
  },
  METRICS_TOKEN: { schema: optionalString, doc: 'bearer token /metrics requires; required in production (unset elsewhere: open, for a local scraper)' },
  WORKER_METRICS_PORT: { schema: integer(0, 65535).default(0), doc: "port of the worker's Prometheus endpoint with Temporal worker metrics (0: off; npm start uses 9464); one per worker process" },
  WORKER_MAX_CONCURRENT_ACTIVITIES: { schema: integer(1).default(8), doc: 'activities one worker runs at once' },
  MEMORY_PROCESSOR_MODULE: { schema: optionalString, doc: 'module whose default export is the memory processor hook (embedding, extraction)' },
} satisfies Record<string, { schema: z.ZodType; doc: string }>;

type Variables = typeof configVariables;
export type Config = { [K in keyof Variables]: z.output<Variables[K]['schema']> };

const configSchema = z.object(Object.fromEntries(Object.entries(configVariables).map(([k, v]) => [k, v.schema])) as { [K in keyof Variables]: Variables[K]['schema'] });

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether HOST keeps the server to this machine: localhost or a loopback address (any other name or address may be reached from outside). */
export function isLoopbackHost(host: string): boolean {
  const address = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (address === 'localhost') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address)?.[1] ?? address;
  if (isIPv4(mapped)) return LOOPBACK.check(mapped, 'ipv4');
  return isIPv6(mapped) && LOOPBACK.check(mapped, 'ipv6');
}

/**
 * Rules across variables, checked on the raw input so they are reported together with any malformed
 * value: the local default secrets stay on a laptop (refused in production and whenever the server
 * listens beyond loopback), production needs its external services, S3 storage names its bucket and
 * whole credentials, and the Dashboard's cookie is never signed with the master key.
 */
function deploymentProblems(input: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  const production = input.NODE_ENV === 'production';
  const host = input.HOST ?? configVariables.HOST.schema.parse(undefined);
  const where = production ? 'in production' : isLoopbackHost(host) ? undefined : `when HOST (${host}) is not a loopback address`;
  const s3 = input.FILES_ADAPTER === 's3';
  if (where) {
    for (const key of Object.keys(LOCAL_SECRETS) as (keyof typeof LOCAL_SECRETS)[]) {
      // S3 encrypts at rest by itself: the files key is not used there.
      if (key === 'FILES_ENCRYPTION_KEY' && s3) continue;
      if (input[key] === undefined || input[key] === LOCAL_SECRETS[key]) problems.push(`${key} must be set to a secret of your own ${where} (the local default is refused)`);
    }
  }
  if (s3 && !input.S3_BUCKET) problems.push('S3_BUCKET is required with FILES_ADAPTER=s3');
  if (!s3 && input.S3_BUCKET) problems.push("S3_BUCKET is set but FILES_ADAPTER is not s3 (files would stay on this machine's disk): set FILES_ADAPTER=s3, or unset S3_BUCKET");
  if (Boolean(input.S3_ACCESS_KEY_ID) !== Boolean(input.S3_SECRET_ACCESS_KEY))
    problems.push('S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: set both, or neither (the AWS SDK then finds credentials itself)');
  if (production) {
    for (const key of ['DATABASE_URI', 'TEMPORAL_ADDRESS', 'METRICS_TOKEN']) {
      if (!input[key]) problems.push(`${key} is required in production`);
    }
  }
  if (configVariables.DATABASE_FERRETDB.schema.safeParse(input.DATABASE_FERRETDB ?? 'false').data && !/^mongodb(\+srv)?:\/\//.test(input.DATABASE_URI ?? '')) {
    problems.push('DATABASE_FERRETDB needs a mongodb:// DATABASE_URI (FerretDB speaks the MongoDB protocol)');
  }
  if (input.DASHBOARD_COOKIE_SECRET !== undefined && input.DASHBOARD_COOKIE_SECRET === (input.PARSE_MASTER_KEY ?? LOCAL_SECRETS.PARSE_MASTER_KEY)) {
    problems.push("DASHBOARD_COOKIE_SECRET must differ from PARSE_MASTER_KEY (the Dashboard's cookie would let anyone test master-key guesses offline)");
  }
  return problems;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the configuration; throws ConfigError naming each bad variable and its rule. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input = Object.fromEntries(Object.keys(configVariables).map((key) => [key, env[key] === '' ? undefined : env[key]]));
  const parsed = configSchema.safeParse(input);
  const problems = [
    ...(parsed.error?.issues ?? []).map((issue) => {
      const key = String(issue.path[0]);
      const got = input[key];
      const secret = /KEY|PASSWORD|SECRET|TOKEN/.test(key);
      return `${key} ${issue.message}${got !== undefined && !secret ? ` (got "${got}")` : ''}`;
    }),
    ...deploymentProblems(input),
  ];
  if (problems.length || !parsed.success) throw new ConfigError(problems);
  return parsed.data as Config;
}

/** Database URI to use: DATABASE_URI, or the embedded PostgreSQL of the local stack. */
export function databaseURI(config: Config): string {
  return config.DATABASE_URI ?? `postgres://postgres:postgres@127.0.0.1:${config.EMBEDDED_POSTGRES_PORT}/parse`;
}

export function serverURL(config: Config): string {
  return config.PARSE_SERVER_URL ?? `http://127.0.0.1:${config.PORT}/parse`;
}

export function publicServerURL(config: Config): string {
  return config.PUBLIC_SERVER_URL ?? `http://localhost:${config.PORT}/parse`;
}

/** Connection options for Temporal, shared by the Parse Server process and the worker. */
export function temporalConnectionOptions(config: Config): { address: string; tls?: boolean; apiKey?: string } {
  const address = config.TEMPORAL_ADDRESS ?? `127.0.0.1:${config.TEMPORAL_PORT}`;
  const tls = config.TEMPORAL_TLS || Boolean(config.TEMPORAL_API_KEY);
  return { address, ...(tls ? { tls: true } : {}), ...(config.TEMPORAL_API_KEY ? { apiKey: config.TEMPORAL_API_KEY } : {}) };
}

export function parseEndpoint(config: Config): { serverURL: string; appId: string; masterKey: string } {
  return { serverURL: serverURL(config), appId: config.PARSE_APP_ID, masterKey: config.PARSE_MASTER_KEY };
}
