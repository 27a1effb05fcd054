/**
 * `npm test`: runs jest against the real stack, checks line coverage of the
 * product code (including the Parse Server and worker processes), and ends
 * with the plain summary line `N passed, N failed` (a failed gate counts as a failure).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { checkCoverage, closingLine } from './coverageGate';
import { reliabilityMarkdown, reliabilityReport } from './reliabilityReport';
import { PROJECT_ROOT } from './stack';

/** The MongoDB version FerretDB v1.24 reports (scripts/mongod-ferretdb answers --version with it). */
const FERRETDB_MONGODB_VERSION = '7.0.42';

/**
 * Which mongod mongodb-memory-server starts for TEST_DATABASE=mongo: MONGOMS_SYSTEM_BINARY when set, a
 * mongod on PATH (which mongodb-memory-server itself does not look for), FerretDB as built by
 * scripts/ferretdb.sh behind scripts/mongod-ferretdb, or else mongodb-memory-server's own download.
 * Answers the environment that makes that choice, and its description.
 */
export function mongodChoice(env: NodeJS.ProcessEnv, mongodOnPath: string | undefined, ferretdbBinary: string | undefined): { env: NodeJS.ProcessEnv; description: string } {
  if (env.MONGOMS_SYSTEM_BINARY) return { env: {}, description: `mongod ${env.MONGOMS_SYSTEM_BINARY} (MONGOMS_SYSTEM_BINARY)` };
  if (mongodOnPath) return { env: { MONGOMS_SYSTEM_BINARY: mongodOnPath }, description: `mongod ${mongodOnPath} (on PATH)` };
  if (ferretdbBinary) {
    return {
      env: { MONGOMS_SYSTEM_BINARY: path.join(PROJECT_ROOT, 'scripts/mongod-ferretdb'), MONGOMS_VERSION: FERRETDB_MONGODB_VERSION, FERRETDB_BINARY: ferretdbBinary },
      description: `FerretDB ${ferretdbBinary} (scripts/ferretdb.sh) behind scripts/mongod-ferretdb`,
    };
  }
  return { env: {}, description: "mongodb-memory-server's downloaded mongod (no MONGOMS_SYSTEM_BINARY, no mongod on PATH, FerretDB not built: scripts/ferretdb.sh)" };
}

function locate(command: string, args: string[]): string | undefined {
  const found = spawnSync(command, args, { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim().split('\n').pop() : undefined;
}

type AssertionResult = { fullName: string; status: string };

/** Each test jest left out (skipped or todo), by full name: a run says what it did not run. */
function notRun(results: { testResults?: { assertionResults: AssertionResult[] }[] }): string[] {
  return (results.testResults ?? []).flatMap((file) => file.assertionResults.filter((test) => test.status === 'pending' || test.status === 'todo').map((test) => test.fullName));
}

function main(): number {
  // `npm run reliability`: only the fault, load and attack suite, and RELIABILITY.md from its table.
  const reliabilityOnly = process.argv[2] === '--reliability';
  const args = reliabilityOnly ? ['test/reliability', ...process.argv.slice(3)] : process.argv.slice(2);
  // Results, coverage and the summary line that .ci/run prints last.
  const coverageRoot = process.env.TEST_OUTPUT_DIR ?? path.join(PROJECT_ROOT, 'coverage');
  const mongo =
    process.env.TEST_DATABASE === 'mongo'
      ? mongodChoice(process.env, locate('sh', ['-c', 'command -v mongod']), locate('bash', [path.join(PROJECT_ROOT, 'scripts/ferretdb.sh'), '--locate']))
      : undefined;
  if (mongo) process.stdout.write(`TEST_DATABASE=mongo: mongodb-memory-server with ${mongo.description}.\n`);
  const rawCoverage = path.join(coverageRoot, 'v8');
  fs.rmSync(coverageRoot, { recursive: true, force: true });
  fs.mkdirSync(rawCoverage, { recursive: true });
  const resultsFile = path.join(coverageRoot, 'jest-results.json');
  const reliabilityResults = path.join(coverageRoot, 'reliability.jsonl');
  const jest = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--json', `--outputFile=${resultsFile}`, ...args], {
    cwd: PROJECT_ROOT,
    stdio: 'inherit',
    env: { ...process.env, ...mongo?.env, COVERAGE_DIR: rawCoverage, RELIABILITY_RESULTS: reliabilityResults },
  });
  const results = fs.existsSync(resultsFile)
    ? (JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number; success: boolean; testResults?: { assertionResults: AssertionResult[] }[] })
    : { numPassedTests: 0, numFailedTests: 0, numPendingTests: 0, success: false };
  const skipped = notRun(results);
  if (skipped.length) process.stdout.write(`\nNot run${mongo ? ' on MongoDB' : ''} (${skipped.length}):\n${skipped.map((name) => `  - ${name}`).join('\n')}\n`);

  // Coverage is checked on full runs only (a filtered run covers a part by design).
  // A failed gate is named just above the closing line, and counts in it as one failure.
  const failedGates: string[] = [];
  if (args.length === 0) {
    const verdict = checkCoverage(rawCoverage, coverageRoot, PROJECT_ROOT);
    if (verdict.ok) process.stdout.write(`Coverage: ${verdict.reason}.\n`);
    else failedGates.push(`coverage: ${verdict.reason}`);
  }
  const reliability = reliabilityReport(reliabilityResults);
  if (reliability) {
    process.stdout.write(`\nReliability:\n${reliability.table}\n`);
    if (!reliability.clean) failedGates.push('reliability: a scenario lost or duplicated memories or answered with a 5xx, or an attack was not refused');
    if (reliabilityOnly) fs.writeFileSync(path.join(PROJECT_ROOT, 'RELIABILITY.md'), reliabilityMarkdown(reliability, results.numPassedTests, results.numFailedTests));
  }
  const summary = closingLine(
    { passed: results.numPassedTests, failed: results.numFailedTests, skipped: results.numPendingTests, runFailed: jest.status !== 0 },
    failedGates.length,
  );
  fs.writeFileSync(path.join(coverageRoot, 'summary.txt'), `${summary}\n`);
  for (const gate of failedGates) process.stdout.write(`FAILED: ${gate}.\n`);
  process.stdout.write(`${summary}\n`);
  return jest.status === 0 && failedGates.length === 0 ? 0 : 1;
}

if (require.main === module) process.exit(main());
