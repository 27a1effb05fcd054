/**
 * `npm test`: runs jest against the real stack, checks line coverage of the
 * product code (including the Parse Server and worker processes), and ends
 * with the plain summary line `N passed, N failed`.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { reliabilityMarkdown, reliabilityReport } from './reliabilityReport';
import { PROJECT_ROOT } from './stack';

const COVERAGE_THRESHOLD = 80;
const COVERED = ['cloud', 'schema', 'worker', 'config', 'client', 'mcp'];

function mongodAvailable(): boolean {
  if (process.env.MONGOMS_SYSTEM_BINARY) return true;
  return spawnSync('sh', ['-c', 'command -v mongod'], { stdio: 'ignore' }).status === 0;
}

function main(): number {
  // `npm run reliability`: only the fault, load and attack suite, and RELIABILITY.md from its table.
  const reliabilityOnly = process.argv[2] === '--reliability';
  const args = reliabilityOnly ? ['test/reliability', ...process.argv.slice(3)] : process.argv.slice(2);
  // Results, coverage and the summary line that .ci/run prints last.
  const coverageRoot = process.env.TEST_OUTPUT_DIR ?? path.join(PROJECT_ROOT, 'coverage');
  if (process.env.TEST_DATABASE === 'mongo' && !mongodAvailable()) {
    process.stdout.write('TEST_DATABASE=mongo: no mongod binary (set MONGOMS_SYSTEM_BINARY or put mongod on PATH); the MongoDB run is skipped.\n');
    fs.mkdirSync(coverageRoot, { recursive: true });
    fs.writeFileSync(path.join(coverageRoot, 'summary.txt'), '0 passed, 0 failed, 1 skipped\n');
    process.stdout.write('0 passed, 0 failed, 1 skipped\n');
    return 0;
  }
  const rawCoverage = path.join(coverageRoot, 'v8');
  fs.rmSync(coverageRoot, { recursive: true, force: true });
  fs.mkdirSync(rawCoverage, { recursive: true });
  const resultsFile = path.join(coverageRoot, 'jest-results.json');
  const reliabilityResults = path.join(coverageRoot, 'reliability.jsonl');
  const jest = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--json', `--outputFile=${resultsFile}`, ...args], {
    cwd: PROJECT_ROOT,
    stdio: 'inherit',
    env: { ...process.env, COVERAGE_DIR: rawCoverage, RELIABILITY_RESULTS: reliabilityResults },
  });
  const results = fs.existsSync(resultsFile)
    ? (JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number; success: boolean })
    : { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, success: false };

  // Coverage is checked on full runs only (a filtered run covers a part by design).
  let coverageOk = true;
  if (args.length === 0) {
    const c8 = spawnSync(
      process.execPath,
      [
        require.resolve('c8/bin/c8'),
        'report',
        '--temp-directory',
        rawCoverage,
        '--report-dir',
        coverageRoot,
        '--reporter=text-summary',
        '--reporter=json-summary',
        // Included as compiled (dist/), reported against the TypeScript sources through source maps.
        // Workflow code runs inside Temporal's sandbox bundle, which V8 coverage cannot map back.
        ...COVERED.map((dir) => `--include=dist/${dir}/**`),
        '--exclude=dist/worker/workflow-bundle.js',
        '--check-coverage',
        `--lines=${COVERAGE_THRESHOLD}`,
      ],
      { cwd: PROJECT_ROOT, stdio: 'inherit' },
    );
    coverageOk = c8.status === 0;
    if (!coverageOk) process.stdout.write(`FAILED: line coverage of ${COVERED.join('/, ')}/ is below ${COVERAGE_THRESHOLD}%.\n`);
  }
  const reliability = reliabilityReport(reliabilityResults);
  if (reliability) {
    process.stdout.write(`\nReliability:\n${reliability.table}\n`);
    if (!reliability.clean) process.stdout.write('FAILED: a scenario lost or duplicated memories, or answered with a 5xx.\n');
    if (reliabilityOnly) fs.writeFileSync(path.join(PROJECT_ROOT, 'RELIABILITY.md'), reliabilityMarkdown(reliability, results.numPassedTests, results.numFailedTests));
  }
  const reliabilityOk = reliability?.clean ?? true;
  // A run that failed outside any test (setup, teardown) still counts as one failure.
  const failed = results.numFailedTests + (jest.status !== 0 && results.numFailedTests === 0 ? 1 : 0);
  const summary = `${results.numPassedTests} passed, ${failed} failed${results.numPendingTests ? `, ${results.numPendingTests} skipped` : ''}`;
  fs.writeFileSync(path.join(coverageRoot, 'summary.txt'), `${summary}\n`);
  process.stdout.write(`${summary}\n`);
  return jest.status === 0 && coverageOk && reliabilityOk ? 0 : 1;
}

process.exit(main());
