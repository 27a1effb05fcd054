/**
 * An existing Parse Server app. The lines marked `// batch memory` are all it takes to add batch memory
 * ingestion; the plugin reads its settings (PARSE_APP_ID, PARSE_MASTER_KEY, TEMPORAL_ADDRESS, ...) from
 * the environment, as its workers (`npx memory-batch worker`) do.
 */
const { once } = require('node:events');
const path = require('node:path');
const express = require('express');
const { ParseServer } = require('parse-server');
const { createBatchMemory } = require('parse-temporal-batch-memory'); // batch memory

const port = Number(process.env.PORT || 1337);

async function main() {
  const batch = createBatchMemory(); // batch memory
  const parseServer = new ParseServer(
    batch.parseServerOptions({
      // batch memory
      appId: process.env.PARSE_APP_ID,
      masterKey: process.env.PARSE_MASTER_KEY,
      databaseURI: process.env.DATABASE_URI,
      serverURL: `http://127.0.0.1:${port}/parse`,
      // No filesAdapter: on PostgreSQL the plugin stores files on disk under DATA_DIR/files, encrypted with FILES_ENCRYPTION_KEY.
      enableAnonymousUsers: true,
      cloud: path.join(__dirname, 'cloud/main.js'),
      schema: { definitions: require('./schema') },
    }),
  );
  await parseServer.start();

  const app = express();
  app.use(batch.router); // batch memory: the REST route, before Parse Server
  app.use('/parse', parseServer.app);
  const server = app.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const stopBatch = await batch.start(parseServer); // batch memory: indexes, expiry Schedule, reconciler
  process.stdout.write(`existing app listening on ${port}\n`);

  process.on('SIGTERM', async () => {
    await stopBatch(); // batch memory
    await batch.close(); // batch memory
    await parseServer.handleShutdown();
    server.close(() => process.exit(0));
  });
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
