/** Configuration: one validated object; a bad value stops start-up naming the variable and the rule. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, LOCAL_SECRETS, loadConfig, publicServerURL, serverURL, temporalConnectionOptions } from '../../config';
import { PROJECT_ROOT, startLocalStack, temporaryDataDir } from '../../scripts/stack';

function problems(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('configuration', () => {
  test('defaults are the limits of docs/requirements.md', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      MAX_BATCH_SIZE: 1000,
      MAX_MEMORY_SIZE: 10 * 1024 * 1024,
      BATCH_CHUNK_SIZE: 10,
      BATCH_WORKFLOW_TIMEOUT: 2 * 60 * 60 * 1000,
      BATCH_FILE_EXPIRY_DAYS: 30,
      BATCH_SPLIT_WARN_BYTES: 50 * 1024 * 1024,
    });
    expect(serverURL(config)).toBe('http://127.0.0.1:1337/parse');
    expect(publicServerURL(config)).toBe('http://localhost:1337/parse');
    expect(temporalConnectionOptions(config)).toEqual({ address: '127.0.0.1:7233' });
  });

  test('environment overrides are parsed: numbers, durations, booleans', () => {
    const config = loadConfig({
      MAX_BATCH_SIZE: '100000',
      BATCH_WORKFLOW_TIMEOUT: '90m',
      BATCH_WAIT_TIMEOUT: '1500',
      TEMPORAL_TLS: 'true',
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_API_KEY: 'key',
    });
    expect(config.MAX_BATCH_SIZE).toBe(100_000);
    expect(config.BATCH_WORKFLOW_TIMEOUT).toBe(90 * 60_000);
    expect(config.BATCH_WAIT_TIMEOUT).toBe(1500);
    expect(temporalConnectionOptions(config)).toEqual({ address: 'temporal.internal:7233', tls: true, apiKey: 'key' });
  });

  test.each([
    [{ MAX_BATCH_SIZE: 'lots' }, 'MAX_BATCH_SIZE must be a number (got "lots")'],
    [{ MAX_BATCH_SIZE: '0' }, 'MAX_BATCH_SIZE must be at least 1 (got "0")'],
    [{ BATCH_CHUNK_SIZE: '2.5' }, 'BATCH_CHUNK_SIZE must be a whole number (got "2.5")'],
    [{ PORT: '70000' }, 'PORT must be at most 65535 (got "70000")'],
    [{ BATCH_WORKFLOW_TIMEOUT: 'two hours' }, 'BATCH_WORKFLOW_TIMEOUT must be a duration such as 1500ms, 30s, 5m or 2h (got "two hours")'],
    [{ DATABASE_URI: 'mysql://x' }, 'DATABASE_URI must start with postgres://, postgresql:// or mongodb:// (got "mysql://x")'],
    [{ TEMPORAL_ADDRESS: 'no-port' }, 'TEMPORAL_ADDRESS must be host:port (got "no-port")'],
    [{ PARSE_MASTER_KEY: 'short' }, 'PARSE_MASTER_KEY must be at least 16 characters'],
    [{ TEMPORAL_TLS: 'maybe' }, 'TEMPORAL_TLS must be true or false (got "maybe")'],
  ])('%j is refused: %s', (env, message) => {
    expect(problems(env)).toEqual([message]);
  });

  const secrets = { PARSE_MASTER_KEY: 'a-real-master-key-0123', DASHBOARD_PASSWORD: 'a-real-password', FILES_ENCRYPTION_KEY: 'a-real-files-key-0123' };

  test('production refuses the local default secrets and requires external services and the metrics token', () => {
    expect(problems({ NODE_ENV: 'production' }).sort()).toEqual(
      [
        ...Object.keys(LOCAL_SECRETS).map((key) => `${key} must be set to a secret of your own in production (the local default is refused)`),
        'DATABASE_URI is required in production',
        'TEMPORAL_ADDRESS is required in production',
        'METRICS_TOKEN is required in production',
      ].sort(),
    );
    expect(problems({ NODE_ENV: 'production', DATABASE_URI: 'postgres://db/parse', TEMPORAL_ADDRESS: 'temporal:7233', ...secrets })).toEqual(['METRICS_TOKEN is required in production']);
    expect(problems({ NODE_ENV: 'production', DATABASE_URI: 'postgres://db/parse', TEMPORAL_ADDRESS: 'temporal:7233', METRICS_TOKEN: 'a-scrape-token', ...secrets })).toEqual([]);
  });

  test.each(['0.0.0.0', '::', '[::]', '10.0.0.5', '192.168.1.20', 'memory.internal', '::ffff:10.0.0.1'])(
    'HOST=%s (beyond loopback) refuses each local default secret, outside production too',
    (host) => {
      const expected = Object.keys(LOCAL_SECRETS).map((key) => `${key} must be set to a secret of your own when HOST (${host}) is not a loopback address (the local default is refused)`);
      expect(problems({ HOST: host }).sort()).toEqual(expected.sort());
      // A default given explicitly is refused as well; secrets of one's own pass.
      expect(problems({ HOST: host, ...LOCAL_SECRETS }).sort()).toEqual(expected.sort());
      expect(problems({ HOST: host, ...secrets })).toEqual([]);
    },
  );

  test.each(['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1'])('HOST=%s (loopback) keeps the local defaults', (host) => {
    expect(problems({ HOST: host })).toEqual([]);
  });

  test('DATABASE_FERRETDB needs a mongodb:// DATABASE_URI', () => {
    const refusal = 'DATABASE_FERRETDB needs a mongodb:// DATABASE_URI (FerretDB speaks the MongoDB protocol)';
    expect(problems({ DATABASE_FERRETDB: 'true' })).toEqual([refusal]);
    expect(problems({ DATABASE_FERRETDB: 'true', DATABASE_URI: 'postgres://db/parse' })).toEqual([refusal]);
    expect(problems({ DATABASE_FERRETDB: 'maybe' })).toEqual(['DATABASE_FERRETDB must be true or false (got "maybe")']);
    expect(loadConfig({ DATABASE_FERRETDB: 'true', DATABASE_URI: 'mongodb://ferretdb:27017/parse' }).DATABASE_FERRETDB).toBe(true);
    expect(loadConfig({}).DATABASE_FERRETDB).toBe(false);
  });

  test('the Dashboard cookie secret is never the master key, and long enough', () => {
    expect(problems({ DASHBOARD_COOKIE_SECRET: LOCAL_SECRETS.PARSE_MASTER_KEY.padEnd(32, '-'), PARSE_MASTER_KEY: LOCAL_SECRETS.PARSE_MASTER_KEY.padEnd(32, '-') })).toEqual([
      "DASHBOARD_COOKIE_SECRET must differ from PARSE_MASTER_KEY (the Dashboard's cookie would let anyone test master-key guesses offline)",
    ]);
    expect(problems({ DASHBOARD_COOKIE_SECRET: 'short' })).toEqual(['DASHBOARD_COOKIE_SECRET must be at least 32 characters']);
    expect(loadConfig({ DASHBOARD_COOKIE_SECRET: 'c'.repeat(32) }).DASHBOARD_COOKIE_SECRET).toBe('c'.repeat(32));
    expect(loadConfig({}).DASHBOARD_COOKIE_SECRET).toBeUndefined();
  });

  test('FILES_ADAPTER=s3 names its bucket and whole credentials, never echoes a secret, and needs no files key in production', () => {
    const s3 = { FILES_ADAPTER: 's3', S3_BUCKET: 'acme-batch-memory', S3_ENDPOINT: 'http://127.0.0.1:9000', S3_ACCESS_KEY_ID: 'AKIAEXAMPLEKEYID', S3_SECRET_ACCESS_KEY: 'a-secret-access-key' };
    expect(loadConfig(s3)).toMatchObject({ ...s3, S3_REGION: 'us-east-1' });
    expect(problems({ FILES_ADAPTER: 's3' })).toEqual(['S3_BUCKET is required with FILES_ADAPTER=s3']);
    expect(problems({ S3_BUCKET: 'acme-batch-memory' })).toEqual(["S3_BUCKET is set but FILES_ADAPTER is not s3 (files would stay on this machine's disk): set FILES_ADAPTER=s3, or unset S3_BUCKET"]);
    const halfCredentials = problems({ ...s3, S3_ACCESS_KEY_ID: undefined });
    expect(halfCredentials).toEqual(['S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: set both, or neither (the AWS SDK then finds credentials itself)']);
    const malformed = problems({ ...s3, FILES_ADAPTER: 'gcs', S3_BUCKET: 'Not_A_Bucket', S3_ENDPOINT: 'nowhere', S3_SECRET_ACCESS_KEY: ' ' });
    expect(malformed).toEqual(
      expect.arrayContaining([
        'FILES_ADAPTER must be default or s3 (got "gcs")',
        'S3_BUCKET must be an S3 bucket name (3–63 lowercase letters, digits, dots and hyphens) (got "Not_A_Bucket")',
        'S3_ENDPOINT must be a URL (got "nowhere")',
      ]),
    );
    // A blank secret is named, its value is not.
    expect(malformed.find((problem) => problem.startsWith('S3_SECRET_ACCESS_KEY'))).not.toMatch(/got/);
    const production = {
      NODE_ENV: 'production',
      PARSE_MASTER_KEY: 'a-real-master-key-0123',
      DASHBOARD_PASSWORD: 'a-real-password',
      DATABASE_URI: 'postgres://db/parse',
      TEMPORAL_ADDRESS: 't:7233',
      METRICS_TOKEN: 'token',
    };
    expect(problems({ ...production, ...s3 })).toEqual([]);
    expect(problems(production)).toEqual(['FILES_ENCRYPTION_KEY must be set to a secret of your own in production (the local default is refused)']);
  });

  test('npm start with HOST=0.0.0.0 and the local default secrets stops at start-up, naming each secret', () => {
    const result = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist/scripts/start.js')], { env: { PATH: process.env.PATH, HOST: '0.0.0.0' }, encoding: 'utf8', timeout: 30_000 });
    expect(result.status).toBe(1);
    for (const key of Object.keys(LOCAL_SECRETS)) {
      expect(result.stderr).toContain(`${key} must be set to a secret of your own when HOST (0.0.0.0) is not a loopback address (the local default is refused)`);
    }
  });

  test.each(['dist/worker/main.js', 'dist/scripts/server.js', 'dist/scripts/start.js'])('%s stops at start-up on a bad value, naming the variable', (entry) => {
    const result = spawnSync(process.execPath, [path.join(PROJECT_ROOT, entry)], {
      env: { PATH: process.env.PATH, BATCH_CHUNK_SIZE: 'ten', NODE_ENV: 'production' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('Invalid configuration:');
    expect(result.stderr).toContain('BATCH_CHUNK_SIZE must be a number (got "ten")');
    expect(result.stderr).toContain('PARSE_MASTER_KEY must be set to a secret of your own in production');
  });
});

test('the local cluster refuses a HOST beyond loopback before it starts anything: its proxy would make every client look local to the instances', async () => {
  const dataDir = temporaryDataDir('batch-memory-cluster-host-');
  const ownSecrets = Object.fromEntries(Object.keys(LOCAL_SECRETS).map((key) => [key, `${key.toLowerCase()}-of-this-test-0123456789`]));
  const env = { ...process.env, ...ownSecrets, HOST: '0.0.0.0', DATA_DIR: dataDir, DATABASE_URI: undefined, TEMPORAL_ADDRESS: undefined };
  await expect(startLocalStack({ env, instances: 2, ephemeral: true })).rejects.toThrow('the local cluster listens on loopback only (HOST is 0.0.0.0)');
  expect(fs.readdirSync(dataDir)).toEqual([]);
});
