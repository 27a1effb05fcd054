/**
 * FerretDB (a MongoDB wire-protocol server) as Parse Server's database, opted into with DATABASE_FERRETDB.
 * FerretDB 1.x refuses three index options Parse Server's MongoDB adapter uses: `collation` (the
 * case-insensitive `_User` username and email indexes), `expireAfterSeconds` (the TTL index of
 * `_Idempotency`) and `partialFilterExpression`. Parse Server's `enableCollationCaseComparison` keeps it
 * from asking for the first; this adapter leaves the other two out. Transactions and change streams are
 * missing there too; the plugin uses neither.
 */
// Plain CommonJS module of Parse Server without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { default: MongoStorageAdapter } = require('parse-server/lib/Adapters/Storage/Mongo/MongoStorageAdapter') as {
  default: new (options: { uri: string; collectionPrefix?: string; mongoOptions?: Record<string, unknown> }) => MongoAdapter;
};

interface MongoAdapter {
  ensureIndex(className: string, schema: unknown, fieldNames: string[], indexName?: string, caseInsensitive?: boolean, options?: Record<string, unknown>): Promise<unknown>;
}

/** Index options FerretDB 1.x refuses (`Index option "…" is not implemented yet`). */
const UNSUPPORTED_INDEX_OPTIONS = ['ttl', 'partialFilterExpression'];

export class FerretDBStorageAdapter extends MongoStorageAdapter {
  ensureIndex(className: string, schema: unknown, fieldNames: string[], indexName?: string, _caseInsensitive = false, options: Record<string, unknown> = {}): Promise<unknown> {
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
  return { ...rest, databaseAdapter: adapter, enableCollationCaseComparison: true };
}
