/**
 * The mongod that mongodb-memory-server starts for the MongoDB test run and benchmark: a real one where
 * there is one, FerretDB (scripts/ferretdb.sh, behind scripts/mongod-ferretdb) where there is none.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from './stack';

/** The MongoDB version FerretDB v1.24 reports (scripts/mongod-ferretdb answers --version with it). */
const FERRETDB_MONGODB_VERSION = '7.0.42';

/**
 * Which mongod mongodb-memory-server starts for TEST_DATABASE=mongo: MONGOMS_SYSTEM_BINARY when set, a
 * mongod on PATH (which mongodb-memory-server itself does not look for), FerretDB as built by
 * scripts/ferretdb.sh behind scripts/mongod-ferretdb, or else mongodb-memory-server's own download.
 * Answers the environment that makes that choice, and its description.
 */
export function mongodChoice(env: NodeJS.ProcessEnv, mongodOnPath: string | undefined, ferretdbBinary: string | undefined): { env: NodeJS.ProcessEnv; description: string } {
  if (env.MONGOMS_SYSTEM_BINARY) return { env: {}, description: `mongod ${env.MONGOMS_SYSTEM_BINARY} (MONGOMS_SYSTEM_BINARY)` };
  if (mongodOnPath) return { env: { MONGOMS_SYSTEM_BINARY: mongodOnPath }, description: `mongod ${mongodOnPath} (on PATH)` };
  if (ferretdbBinary) {
    return {
      env: { MONGOMS_SYSTEM_BINARY: path.join(PROJECT_ROOT, 'scripts/mongod-ferretdb'), MONGOMS_VERSION: FERRETDB_MONGODB_VERSION, FERRETDB_BINARY: ferretdbBinary },
      description: `FerretDB ${ferretdbBinary} (scripts/ferretdb.sh) behind scripts/mongod-ferretdb`,
    };
  }
  return { env: {}, description: "mongodb-memory-server's downloaded mongod (no MONGOMS_SYSTEM_BINARY, no mongod on PATH, FerretDB not built: scripts/ferretdb.sh)" };
}

function locate(command: string, args: string[]): string | undefined {
  const found = spawnSync(command, args, { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim().split('\n').pop() : undefined;
}

/** mongodChoice for this machine and environment. */
export function chooseMongod(): { env: NodeJS.ProcessEnv; description: string } {
  return mongodChoice(process.env, locate('sh', ['-c', 'command -v mongod']), locate('bash', [path.join(PROJECT_ROOT, 'scripts/ferretdb.sh'), '--locate']));
}

/** What the server at `uri` says it is (buildInfo): the MongoDB version it answers as, and FerretDB's own version when it is FerretDB. */
export async function mongoServerInfo(uri: string): Promise<{ version: string; ferretdbVersion?: string }> {
  const { MongoClient } = await import('mongodb');
  const client = await MongoClient.connect(uri);
  try {
    const { version, ferretdbVersion } = await client.db('admin').command({ buildInfo: 1 });
    return { version: String(version), ...(ferretdbVersion === undefined ? {} : { ferretdbVersion: String(ferretdbVersion) }) };
  } finally {
    await client.close();
  }
}

/** Whether the server at `uri` is FerretDB: it answers buildInfo with its own version beside the MongoDB one it plays. */
export async function isFerretDB(uri: string): Promise<boolean> {
  return (await mongoServerInfo(uri)).ferretdbVersion !== undefined;
}
