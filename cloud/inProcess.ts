/**
 * Parse Server's own controllers, reached in this process (Cloud Code runs inside Parse Server): files,
 * sessions and bulk creates without an HTTP request from Parse Server to itself. Each goes through the
 * same adapter, cache and schema as Parse Server's routes.
 */
import type { Readable } from 'node:stream';
import Parse from '../schema/parseSdk';
import type { ParseEndpoint } from '../schema/batchFile';
import { type BatchStorageAdapter, type CreateAnswer, FileStorageError } from '../storage/batchStorage';
import { openFileOverHttp } from '../storage/http';
import { type ParseDatabase, createObjects, deleteBatchRows } from './bulkWriter';

// Plain CommonJS modules of Parse Server without type declarations.
/* eslint-disable @typescript-eslint/no-require-imports */
const ParseServerConfig = require('parse-server/lib/Config') as { get(appId: string): AppConfig | undefined };
const { getAuthForSessionToken } = require('parse-server/lib/Auth') as {
  getAuthForSessionToken(options: { config: AppConfig; sessionToken: string }): Promise<{ user?: Parse.User }>;
};
/* eslint-enable @typescript-eslint/no-require-imports */

interface AppConfig {
  database: ParseDatabase;
  filesController: {
    /** A stream is gathered by the controller for an adapter that stores whole files (the files adapters here). */
    createFile(config: AppConfig, filename: string, data: Buffer | Readable, contentType: string): Promise<{ name: string }>;
    getFileData(config: AppConfig, filename: string): Promise<Buffer>;
    deleteFile(config: AppConfig, filename: string): Promise<unknown>;
  };
}

/** A missing file: ENOENT from the file-system adapter, FileNotFound from GridFS. */
function isMissing(error: unknown): boolean {
  const { code, message } = error as { code?: string; message?: string };
  return code === 'ENOENT' || /FileNotFound|not found/i.test(message ?? '');
}

export class InProcessParse {
  constructor(private readonly appId: string) {}

  /** Parse Server's configuration of the app (read per call: it exists once Parse Server has started). */
  get config(): AppConfig {
    return ParseServerConfig.get(this.appId) as AppConfig;
  }

  /** Whether a started Parse Server serves this app id through the copy of parse-server this package loads. */
  get serving(): boolean {
    return ParseServerConfig.get(this.appId) !== undefined;
  }

  /** Parse Server's database controller. */
  get database(): ParseDatabase {
    return this.config.database;
  }

  /** The user of a session token, through Parse Server's session lookup and its user cache; undefined when invalid or expired. */
  async userOfSession(sessionToken: string): Promise<Parse.User | undefined> {
    try {
      return (await getAuthForSessionToken({ config: this.config, sessionToken })).user;
    } catch (error) {
      if ((error as Parse.Error).code === Parse.Error.INVALID_SESSION_TOKEN) return undefined;
      throw error;
    }
  }
}

/** The storage adapter inside Parse Server: its files controller and the database controller's bulk creates. */
export class InProcessStorage implements BatchStorageAdapter {
  constructor(
    private readonly parse: InProcessParse,
    private readonly endpoint: ParseEndpoint,
  ) {}

  async uploadFile(name: string, data: Buffer | Readable, contentType = 'application/gzip'): Promise<string> {
    const { config } = this.parse;
    return (await config.filesController.createFile(config, name, data, contentType)).name;
  }

  async downloadFile(name: string): Promise<Buffer> {
    const { config } = this.parse;
    try {
      return await config.filesController.getFileData(config, name);
    } catch (error) {
      if (isMissing(error)) throw new FileStorageError(`download of ${name} failed: not found`, 404);
      throw error;
    }
  }

  /** Through Parse Server's files route: the files controller reads (and decrypts) a file whole. */
  openFile(name: string): Promise<Readable> {
    return openFileOverHttp(this.endpoint, name);
  }

  async deleteFile(name: string): Promise<void> {
    const { config } = this.parse;
    await config.filesController.deleteFile(config, name).catch((error: unknown) => {
      if (!isMissing(error)) throw error;
    });
  }

  /** Creates rows of a class without triggers, as the bulk write route does. */
  createObjects(className: string, objects: Record<string, unknown>[], shared?: Record<string, unknown>): Promise<CreateAnswer[]> {
    return createObjects(this.parse.database, className, objects, shared);
  }

  deleteBatchRows(className: string, batchId: string, limit: number): Promise<number> {
    return deleteBatchRows(this.parse.database, className, batchId, limit);
  }
}
