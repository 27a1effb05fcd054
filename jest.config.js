/**
 * Two tiers. `unit`: pure logic, and the workflow code on Temporal's time-skipping test server with the
 * activities a test supplies; no stack, runs in seconds (`npm run test:unit`). `stack`: everything else,
 * against one real stack (PostgreSQL, Temporal dev server, Parse Server, worker) booted once per run.
 */
const transform = {
  '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
};

// The MongoDB run leaves out what does not depend on the database: the PostgreSQL run counts it (test/support/databaseIndependent.js).
const onMongo = process.env.TEST_DATABASE === 'mongo';
const databaseIndependent = require('./test/support/databaseIndependent');

const unit = {
  displayName: 'unit',
  testEnvironment: 'node',
  roots: ['<rootDir>/test/unit'],
  testMatch: ['**/*.test.ts'],
  transform,
};

module.exports = {
  testSequencer: '<rootDir>/test/support/sequencer.js',
  maxWorkers: 2,
  slowTestThreshold: 30,
  testTimeout: 180_000,
  projects: [
    ...(onMongo ? [] : [unit]),
    {
      displayName: 'stack',
      testEnvironment: 'node',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: ['<rootDir>/test/unit/', ...(onMongo ? databaseIndependent.map((prefix) => `<rootDir>/${prefix}`) : [])],
      transform,
      globalSetup: '<rootDir>/test/support/globalSetup.ts',
      globalTeardown: '<rootDir>/test/support/globalTeardown.ts',
    },
  ],
};
