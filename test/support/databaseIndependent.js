/**
 * Test files whose outcome does not depend on the database a run uses: the unit tier, the stack tests of
 * the product's own commands, documents and settings (which start their own embedded PostgreSQL, or none),
 * and the Python client.
 * The MongoDB run (TEST_DATABASE=mongo) leaves them out, so that the closing line of both runs counts each
 * test once. Paths from the repository root; a folder ends with a slash.
 */
module.exports = [
  'test/unit/',
  'test/docs/',
  'test/config/',
  'test/stack/coverage-gate.test.ts',
  'test/stack/local-stack.test.ts',
  'test/stack/supervision.test.ts',
  'test/stack/temporal-cli.test.ts',
  'test/stack/readme-commands.test.ts',
  // The Python client speaks HTTP to the REST route only; the REST tests cover the route on both databases.
  'test/client/python-client.test.ts',
];
