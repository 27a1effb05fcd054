/**
 * Two tiers. `unit`: pure logic, and the workflow code on Temporal's time-skipping test server with the
 * activities a test supplies; no stack, runs in seconds (`npm run test:unit`). `stack`: everything else,
 * against one real stack (PostgreSQL, Temporal dev server, Parse Server, worker) booted once per run.
 */
const transform = {
  '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
};

module.exports = {
  testSequencer: '<rootDir>/test/support/sequencer.js',
  maxWorkers: 2,
  slowTestThreshold: 30,
  testTimeout: 180_000,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      roots: ['<rootDir>/test/unit'],
      testMatch: ['**/*.test.ts'],
      transform,
    },
    {
      displayName: 'stack',
      testEnvironment: 'node',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.test.ts'],
      testPathIgnorePatterns: ['<rootDir>/test/unit/'],
      transform,
      globalSetup: '<rootDir>/test/support/globalSetup.ts',
      globalTeardown: '<rootDir>/test/support/globalTeardown.ts',
    },
  ],
};
