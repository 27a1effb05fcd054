/** Starts the longest test files first, so that they overlap the rest instead of running alone at the end. */
const Sequencer = require('@jest/test-sequencer').default;

const LONGEST_FIRST = [
  'faults.test.ts',
  'readme-commands.test.ts',
  'supervision.test.ts',
  'existing-app.test.ts',
  'cluster.test.ts',
  'cli.test.ts',
  'bounds.test.ts',
  'upload-lost.test.ts',
  'local-stack.test.ts',
  'failed-batches.test.ts',
  'ndjson-large.test.ts',
  'bench-smoke.test.ts',
  'temporal-outage.test.ts',
  's3-files.test.ts',
  'payload-limits.test.ts',
];

class LongestFirstSequencer extends Sequencer {
  sort(tests) {
    const rank = (test) => {
      const index = LONGEST_FIRST.findIndex((name) => test.path.endsWith(name));
      return index === -1 ? LONGEST_FIRST.length : index;
    };
    return [...super.sort(tests)].sort((a, b) => rank(a) - rank(b));
  }
}

module.exports = LongestFirstSequencer;
