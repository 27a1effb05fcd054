/**
 * FerretDB (a MongoDB wire-protocol server) as Parse Server's database, opted into with DATABASE_FERRETDB.
 * FerretDB 1.x refuses three index options Parse Server's MongoDB adapter uses: `collation` (the
 * case-insensitive `_User` username and email indexes), `expireAfterSeconds` (the TTL index of
 * `_Idempotency`) and `partialFilterExpression`: this adapter leaves them out, and answers Parse Server's
 * case-insensitive finds (is this user name or email taken?) with case-insensitive patterns instead. Transactions and change streams are
 * missing there too; the plugin uses neither. And FerretDB 1.x applies an update by reading the document
 * and writing it back whole, so two updates of one document at once lose one (a count increment puts back
 * the status a cancel had just written): this adapter's updates of a class take turns.
 */
// Plain CommonJS module of Parse Server without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { default: MongoStorageAdapter } = require('parse-server/lib/Adapters/Storage/Mongo/MongoStorageAdapter') as {
  default: new (options: { uri: string; collectionPrefix?: string; mongoOptions?: Record<string, unknown> }) => MongoAdapter;
};

type Update = (className: string, schema: unknown, query: unknown, update: unknown, transactionalSession?: unknown) => Promise<unknown>;
type FindOptions = { caseInsensitive?: boolean } & Record<string, unknown>;

interface MongoAdapter {
  find(className: string, schema: unknown, query: Record<string, unknown>, options: FindOptions): Promise<unknown>;
  ensureIndex(className: string, schema: unknown, fieldNames: string[], indexName?: string, caseInsensitive?: boolean, options?: Record<string, unknown>): Promise<unknown>;
  findOneAndUpdate(...args: Parameters<Update>): ReturnType<Update>;
  updateObjectsByQuery(...args: Parameters<Update>): ReturnType<Update>;
  upsertOneObject(...args: Parameters<Update>): ReturnType<Update>;
}

/** Index options FerretDB 1.x refuses (`Index option "…" is not implemented yet`). */
const UNSUPPORTED_INDEX_OPTIONS = ['ttl', 'partialFilterExpression'];

export class FerretDBStorageAdapter extends MongoStorageAdapter {
  /** The last update of each class, which the next one waits for. */
  private readonly updates = new Map<string, Promise<unknown>>();

  /** Runs `update` once the updates of its class before it have settled. */
  private inTurn(className: string, update: () => Promise<unknown>): Promise<unknown> {
    const turn = (this.updates.get(className) ?? Promise.resolve()).then(update, update);
    const settled = turn.catch(() => undefined);
    this.updates.set(className, settled);
    void settled.then(() => {
      if (this.updates.get(className) === settled) this.updates.delete(className);
    });
    return turn;
  }

  findOneAndUpdate(...args: Parameters<Update>): Promise<unknown> {
    return this.inTurn(args[0], () => super.findOneAndUpdate(...args));
  }

  updateObjectsByQuery(...args: Parameters<Update>): Promise<unknown> {
    return this.inTurn(args[0], () => super.updateObjectsByQuery(...args));
  }

  upsertOneObject(...args: Parameters<Update>): Promise<unknown> {
    return this.inTurn(args[0], () => super.upsertOneObject(...args));
  }

  /**
   * A case-insensitive find (Parse Server's check that a user name or email is not taken, whatever its case)
   * as anchored case-insensitive patterns: FerretDB 1.x ignores the collation MongoDB would use for it, so
   * `Alice` would not find `alice`.
   */
  find(className: string, schema: unknown, query: Record<string, unknown>, options: FindOptions): Promise<unknown> {
    if (!options.caseInsensitive) return super.find(className, schema, query, options);
    const patterns = Object.fromEntries(
      Object.entries(query).map(([field, value]) => [field, typeof value === 'string' ? { $regex: `^${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, $options: 'i' } : value]),
    );
    return super.find(className, schema, patterns, { ...options, caseInsensitive: false });
  }

  /** A case-insensitive index cannot be made here (no collation): the finds above do without one. */
  ensureIndex(className: string, schema: unknown, fieldNames: string[], indexName?: string, caseInsensitive = false, options: Record<string, unknown> = {}): Promise<unknown> {
    if (caseInsensitive) return Promise.resolve();
    const supported = Object.fromEntries(Object.entries(options).filter(([option]) => !UNSUPPORTED_INDEX_OPTIONS.includes(option)));
    return super.ensureIndex(className, schema, fieldNames, indexName, false, supported);
  }
}

/**
 * Parse Server's options for FerretDB: this adapter in place of `databaseURI`, `databaseOptions` and
 * `collectionPrefix` (Parse Server takes either the adapter or those), and case comparison in queries.
 * Options that already name a `databaseAdapter` are the host's choice and stay as they are.
 */
export function onFerretDB(options: Record<string, unknown>): Record<string, unknown> {
  const { databaseURI, databaseOptions, collectionPrefix, ...rest } = options;
  if (rest.databaseAdapter !== undefined) return options;
  if (typeof databaseURI !== 'string') throw new Error("DATABASE_FERRETDB: Parse Server's databaseURI must be the FerretDB mongodb:// URI");
  const adapter = new FerretDBStorageAdapter({ uri: databaseURI, collectionPrefix: collectionPrefix as string | undefined, mongoOptions: databaseOptions as Record<string, unknown> | undefined });
  return { ...rest, databaseAdapter: adapter };
}
