/**
 * `memory-batch mcp`: the MCP door over stdio, for an agent on the user's own machine. It reaches the
 * server through the REST route with the BatchMemoryClient, as the other commands do: the server applies
 * the same authentication, rate limits and bounds as to any REST client, a file of any size is streamed
 * as gzip NDJSON without being held in memory, and the process needs nothing but the server's URL and
 * the user's credentials. Standard output carries the protocol only; diagnostics go to standard error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { configVariables } from '../config';
import { createLogger } from '../config/log';
import { type BatchAccess, ToolRefusal, batchMcpServer } from '../mcp/server';
import { type BatchMemoryClient, jsonDocumentToNdjson } from '.';

const DEFAULT_REST_MAX_JSON_BYTES = configVariables.REST_MAX_JSON_BYTES.schema.parse(undefined);

export interface StdioOptions {
  /** Folders `import_memories` may read files from (the working directory, and `--allow-dir`). */
  allowedDirs: string[];
  /** The user the master key acts for, when the client holds it (`--master-key-mode`). */
  masterKeyFor?: string;
}

/**
 * The file an agent named, as a real path inside one of `allowedDirs`: an agent (or a prompt it read) may
 * name any path, and this process reads with its user's rights; a link that leads out of the folders, and
 * anything outside them (/proc, ~/.ssh), is refused.
 */
function allowedFile(file: string, allowedDirs: string[]): string {
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch (error) {
    throw new ToolRefusal(`path: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const inside = allowedDirs.some((dir) => {
    const relative = path.relative(fs.realpathSync(dir), real);
    return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
  });
  if (!inside) throw new ToolRefusal(`path: ${file} is outside the folders this server reads files from (its working directory, and memory-batch mcp --allow-dir)`);
  if (!fs.statSync(real).isFile()) throw new ToolRefusal(`path: ${file} is not a file`);
  return real;
}

/** The REST route as the client's user may use it. */
function restAccess(client: BatchMemoryClient, options: StdioOptions): BatchAccess {
  return {
    async submit(settings, memories, idempotencyKey) {
      return (await client.add({ ...settings, memories }, { idempotencyKey, wait: false })).batch;
    },
    async submitFile(file, format, settings, idempotencyKey) {
      const bytes = fs.createReadStream(allowedFile(file, options.allowedDirs), { highWaterMark: 256 * 1024 });
      return (await client.addNdjson(format === 'json' ? jsonDocumentToNdjson(bytes) : bytes, settings, { idempotencyKey, wait: false })).batch;
    },
    check: (settings, memories) => client.check({ ...settings, memories }),
    checkFile(file, format, settings) {
      const bytes = fs.createReadStream(allowedFile(file, options.allowedDirs), { highWaterMark: 256 * 1024 });
      return client.checkNdjson(format === 'json' ? jsonDocumentToNdjson(bytes) : bytes, settings);
    },
    status: (batchId) => client.get(batchId),
    list: (page) => client.list(page),
    results: (batchId) => client.results(batchId),
    cancel: (batchId) => client.cancel(batchId),
    delete: (batchId) => client.delete(batchId),
    retryFailed: (batchId) => client.retryFailed(batchId),
    // The events stream, until the batch ends; the server bounds how many streams a user holds open.
    follow: (batchId, onStatus, signal) => client.wait(batchId, { onProgress: onStatus, signal }),
  };
}

/** Serves MCP on standard input and output until the agent closes it. */
export async function serveMcpOverStdio(client: BatchMemoryClient, options: StdioOptions = { allowedDirs: [process.cwd()] }): Promise<void> {
  // Warnings and errors only: they go to standard error, where they cannot mix with the protocol.
  const log = createLogger('warn', { component: 'memory-batch-mcp' });
  const server = batchMcpServer(restAccess(client, options), { log, confirmProgress: true, masterKeyFor: options.masterKeyFor });
  // The SDK drops a message over its buffer (10 MiB by default), which would leave the agent waiting:
  // room for any inline batch the REST route's default JSON bound takes, with JSON-RPC framing around it.
  const transport = new StdioServerTransport(process.stdin, process.stdout, { maxBufferSize: 2 * DEFAULT_REST_MAX_JSON_BYTES });
  server.server.onerror = (error) => log.warn('MCP transport error', { error: error.message });
  const closed = new Promise<void>((resolve) => (server.server.onclose = resolve));
  await server.connect(transport);
  // The agent ends the session by closing our standard input.
  process.stdin.once('end', () => void server.close());
  await closed;
}
