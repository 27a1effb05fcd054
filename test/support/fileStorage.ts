/**
 * A stack's stored files where its files adapter keeps them (cloud/filesAdapter.ts defaultFilesAdapter): on disk
 * under DATA_DIR/files, or in GridFS (bucket `fs`) on MongoDB. Bytes are as stored: encrypted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { GridFSBucket, MongoClient } from 'mongodb';

export interface FileStorage {
  names(): Promise<string[]>;
  read(name: string): Promise<Buffer>;
  remove(name: string): Promise<void>;
  /** Replaces a stored file's bytes. */
  write(name: string, bytes: Buffer): Promise<void>;
}

export function fileStorage(env: Record<string, string>): FileStorage {
  const uri = env.DATABASE_URI;
  if (uri?.startsWith('mongodb')) return gridFS(uri);
  const dir = path.join(env.DATA_DIR, 'files');
  const file = (name: string) => path.join(dir, encodeURIComponent(name));
  return {
    names: async () => (fs.existsSync(dir) ? fs.readdirSync(dir).map((name) => decodeURIComponent(name)) : []),
    read: async (name) => fs.readFileSync(file(name)),
    remove: async (name) => fs.rmSync(file(name)),
    write: async (name, bytes) => fs.writeFileSync(file(name), bytes),
  };
}

function gridFS(uri: string): FileStorage {
  const withBucket = async <T>(use: (bucket: GridFSBucket) => Promise<T>): Promise<T> => {
    const client = await MongoClient.connect(uri);
    try {
      return await use(new GridFSBucket(client.db()));
    } finally {
      await client.close();
    }
  };
  const remove = (bucket: GridFSBucket, name: string) =>
    bucket
      .find({ filename: name })
      .toArray()
      .then((files) => Promise.all(files.map((stored) => bucket.delete(stored._id))));
  return {
    names: () => withBucket(async (bucket) => (await bucket.find({}).toArray()).map((stored) => stored.filename)),
    read: (name) =>
      withBucket(async (bucket) => {
        const parts: Buffer[] = [];
        for await (const part of bucket.openDownloadStreamByName(name)) parts.push(part as Buffer);
        return Buffer.concat(parts);
      }),
    remove: (name) => withBucket(async (bucket) => void (await remove(bucket, name))),
    write: (name, bytes) =>
      withBucket(async (bucket) => {
        await remove(bucket, name);
        await new Promise<void>((resolve, reject) =>
          bucket
            .openUploadStream(name)
            .on('finish', () => resolve())
            .on('error', reject)
            .end(bytes),
        );
      }),
  };
}
