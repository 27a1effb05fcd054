/** Tests run against one real stack (PostgreSQL, Temporal dev server, Parse Server, worker) booted once per run. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  globalSetup: '<rootDir>/test/support/globalSetup.ts',
  globalTeardown: '<rootDir>/test/support/globalTeardown.ts',
  testSequencer: '<rootDir>/test/support/sequencer.js',
  testTimeout: 180_000,
  maxWorkers: 2,
  slowTestThreshold: 30,
};
