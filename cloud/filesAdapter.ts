/** The files adapter of the product's own server, and of a host on PostgreSQL that names none. */
import path from 'node:path';
import { type Config, ConfigError } from '../config';

// Plain CommonJS packages without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const FSFilesAdapter = require('@parse/fs-files-adapter') as new (options: { filesSubDirectory?: string; encryptionKey?: string }) => object;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { GridFSBucketAdapter } = require('parse-server/lib/Adapters/Files/GridFSBucketAdapter') as {
  GridFSBucketAdapter: new (databaseURI: string, options: object, encryptionKey?: string) => object;
};

/** The files adapter FILES_ADAPTER names: an S3 bucket, or encrypted files in GridFS on MongoDB (Parse Server's `fileKey` encryption), otherwise on disk under DATA_DIR/files. */
export function defaultFilesAdapter(config: Config, databaseURI = config.DATABASE_URI): object {
  if (config.FILES_ADAPTER === 's3') return s3FilesAdapter(config);
  if (databaseURI?.startsWith('mongodb')) return new GridFSBucketAdapter(databaseURI, {}, config.FILES_ENCRYPTION_KEY);
  const filesDir = path.resolve(config.DATA_DIR, 'files');
  // The adapter resolves its folder under ./files of the working directory.
  return new FSFilesAdapter({ filesSubDirectory: path.relative(path.resolve('files'), filesDir), encryptionKey: config.FILES_ENCRYPTION_KEY });
}

/**
 * `@parse/s3-files-adapter` on S3_BUCKET. Downloads always go through Parse Server (no direct access,
 * objects private), where batch files are refused to all but the master key. The package is an optional
 * peer: only deployments that store files in S3 install the AWS SDK it brings.
 */
function s3FilesAdapter(config: Config): object {
  let S3Adapter: new (options: Record<string, unknown>) => object;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    S3Adapter = require('@parse/s3-files-adapter') as typeof S3Adapter;
  } catch (error) {
    if ((error as { code?: string }).code !== 'MODULE_NOT_FOUND') throw error;
    throw new ConfigError(['FILES_ADAPTER=s3 needs the package @parse/s3-files-adapter: npm install @parse/s3-files-adapter']);
  }
  return new S3Adapter({
    bucket: config.S3_BUCKET,
    region: config.S3_REGION,
    bucketPrefix: config.S3_BUCKET_PREFIX ?? '',
    directAccess: false,
    fileAcl: 'none',
    ...(config.S3_SERVER_SIDE_ENCRYPTION ? { ServerSideEncryption: config.S3_SERVER_SIDE_ENCRYPTION } : {}),
    ...(config.S3_ACCESS_KEY_ID && config.S3_SECRET_ACCESS_KEY ? { credentials: { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY } } : {}),
    // An S3-compatible server answers on its own host, with the bucket in the path.
    ...(config.S3_ENDPOINT ? { s3overrides: { endpoint: config.S3_ENDPOINT, forcePathStyle: true } } : {}),
  });
}
