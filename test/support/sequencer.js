/** Starts the longest test files first, so that they overlap the rest instead of running alone at the end. */
const Sequencer = require('@jest/test-sequencer').default;

const LONGEST_FIRST = [
  'ndjson-large.test.ts',
  'cli.test.ts',
  'existing-app.test.ts',
  'faults.test.ts',
  'temporal-outage.test.ts',
  'cluster.test.ts',
  'supervision.test.ts',
  's3-files.test.ts',
  'bench-smoke.test.ts',
  'payload-limits.test.ts',
  'local-stack.test.ts',
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
