/**
 * `npm test`: runs jest's two projects (the unit tier, and the tests against the real stack), checks line
 * coverage of the product code (including the Parse Server and worker processes, and the workflow code in
 * the unit tier), and ends with the plain summary line `N passed, N failed` (a failed gate counts as a failure).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { checkCoverage, checkUnitWorkflowCoverage, closingLine } from './coverageGate';
import { reliabilityMarkdown, reliabilityReport } from './reliabilityReport';
import { describeMachine } from './machine';
import { chooseMongod } from './mongod';
import { PROJECT_ROOT } from './stack';
import { projectVenvBin } from './temporalCli';

type AssertionResult = { fullName: string; status: string };

/** Each test jest left out (skipped or todo), by full name: a run says what it did not run. */
function notRun(results: { testResults?: { assertionResults: AssertionResult[] }[] }): string[] {
  return (results.testResults ?? []).flatMap((file) => file.assertionResults.filter((test) => test.status === 'pending' || test.status === 'todo').map((test) => test.fullName));
}

/** The test files under `dir`, as jest's testMatch finds them (every `.test.ts` file at any depth), from the repository root. */
function testFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.test.ts'))
    .map((name) => path.relative(PROJECT_ROOT, path.join(dir, name)));
}

// The files the MongoDB run leaves to the PostgreSQL run (jest.config.js reads the same list).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const DATABASE_INDEPENDENT = require(path.join(PROJECT_ROOT, 'test/support/databaseIndependent.js')) as string[];

function main(): number {
  // `npm run reliability`: only the fault, load and attack suite, and RELIABILITY.md from its table.
  const reliabilityOnly = process.argv[2] === '--reliability';
  // The commit and tree the tests run on, read before they run (a commit made meanwhile is not theirs).
  const machine = describeMachine();
  const args = reliabilityOnly ? ['test/reliability', ...process.argv.slice(3)] : process.argv.slice(2);
  // Results, coverage and the summary line that .ci/run prints last.
  const coverageRoot = path.resolve(PROJECT_ROOT, process.env.TEST_OUTPUT_DIR ?? 'coverage');
  const mongo = process.env.TEST_DATABASE === 'mongo' ? chooseMongod() : undefined;
  if (mongo) process.stdout.write(`TEST_DATABASE=mongo: mongodb-memory-server with ${mongo.description}.\n`);
  const rawCoverage = path.join(coverageRoot, 'v8');
  // The jest processes' own coverage: the unit tier runs the workflow code in them.
  const unitRawCoverage = path.join(coverageRoot, 'unit', 'v8');
  fs.rmSync(coverageRoot, { recursive: true, force: true });
  fs.mkdirSync(rawCoverage, { recursive: true });
  fs.mkdirSync(unitRawCoverage, { recursive: true });
  const resultsFile = path.join(coverageRoot, 'jest-results.json');
  const reliabilityResults = path.join(coverageRoot, 'reliability.jsonl');
  const jest = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--json', `--outputFile=${resultsFile}`, ...args], {
    cwd: PROJECT_ROOT,
    stdio: 'inherit',
    env: {
      ...process.env,
      // The project's Python tools as `npm run setup` installed them (moto_server for the files-in-S3 test).
      PATH: [projectVenvBin(PROJECT_ROOT), process.env.PATH].filter(Boolean).join(path.delimiter),
      ...mongo?.env,
      COVERAGE_DIR: rawCoverage,
      NODE_V8_COVERAGE: unitRawCoverage,
      RELIABILITY_RESULTS: reliabilityResults,
    },
  });
  const results = fs.existsSync(resultsFile)
    ? (JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as {
        numPassedTests: number;
        numFailedTests: number;
        numPendingTests: number;
        success: boolean;
        numTodoTests?: number;
        testResults?: { status?: string; assertionResults: AssertionResult[] }[];
      })
    : { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, success: false };
  // A test file that could not run (a syntax error, a failing beforeAll) counts as a failure, whatever else failed;
  // on a full run, so does each test file that jest did not run at all.
  const filesRun = results.testResults ?? [];
  const filesNotRun = filesRun.filter((file) => file.status === 'failed' && !file.assertionResults.some((test) => test.status === 'failed')).length;
  const allFiles = testFiles(path.join(PROJECT_ROOT, 'test'));
  const leftToPostgres = mongo ? allFiles.filter((file) => DATABASE_INDEPENDENT.some((prefix) => file.startsWith(prefix))) : [];
  if (args.length === 0 && leftToPostgres.length) process.stdout.write(`\nLeft to the PostgreSQL run, as they do not depend on the database: ${leftToPostgres.length} test files.\n`);
  const filesExpected = args.length === 0 ? allFiles.length - leftToPostgres.length : filesRun.length;
  const filesMissing = Math.max(0, filesExpected - filesRun.length);
  if (filesMissing) process.stdout.write(`\n${filesMissing} test file(s) did not run: ${filesExpected} exist, ${filesRun.length} ran.\n`);
  const skipped = notRun(results);
  if (skipped.length) process.stdout.write(`\nNot run${mongo ? ' on MongoDB' : ''} (${skipped.length}):\n${skipped.map((name) => `  - ${name}`).join('\n')}\n`);

  // Coverage is checked on full runs only (a filtered run covers a part by design).
  // A failed gate is named just above the closing line, and counts in it as one failure.
  const failedGates: string[] = [];
  if (args.length === 0) {
    const verdict = checkCoverage(rawCoverage, coverageRoot, PROJECT_ROOT);
    if (verdict.ok) process.stdout.write(`Coverage: ${verdict.reason}.\n`);
    else failedGates.push(`coverage: ${verdict.reason}`);
    // The unit tier runs in the PostgreSQL run only.
    if (!mongo) {
      const workflows = checkUnitWorkflowCoverage(unitRawCoverage, path.join(coverageRoot, 'unit'), PROJECT_ROOT);
      if (workflows.ok) process.stdout.write(`Coverage: ${workflows.reason}.\n`);
      else failedGates.push(`coverage: ${workflows.reason}`);
    }
  }
  const reliability = reliabilityReport(reliabilityResults);
  if (reliability) {
    process.stdout.write(`\nReliability:\n${reliability.table}\n`);
    if (!reliability.clean) failedGates.push('reliability: a scenario lost or duplicated memories or answered with a 5xx, or an attack was not refused');
    if (reliabilityOnly) fs.writeFileSync(path.join(PROJECT_ROOT, 'RELIABILITY.md'), reliabilityMarkdown(reliability, results.numPassedTests, results.numFailedTests, machine));
  }
  const summary = closingLine(
    { passed: results.numPassedTests, failed: results.numFailedTests, skipped: results.numPendingTests + (results.numTodoTests ?? 0), runFailed: jest.status !== 0, filesNotRun, filesMissing },
    failedGates.length,
  );
  fs.writeFileSync(path.join(coverageRoot, 'summary.txt'), `${summary}\n`);
  for (const gate of failedGates) process.stdout.write(`FAILED: ${gate}.\n`);
  process.stdout.write(`${summary}\n`);
  return jest.status === 0 && failedGates.length === 0 ? 0 : 1;
}

process.exit(main());
