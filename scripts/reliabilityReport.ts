/**
 * The reliability table: one row per scenario of test/reliability (faults injected, bad inputs
 * tried, 5xx answers, memories lost and duplicated), printed at the end of a run and written to
 * RELIABILITY.md by `npm run reliability`. Any non-zero 5xx, lost or duplicated count fails the run.
 */
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

interface Row {
  scenario: string;
  faults: number;
  badInputs: number;
  serverErrors: number;
  lost: number;
  duplicated: number;
}

export interface ReliabilityReport {
  table: string;
  clean: boolean;
}

export function reliabilityReport(resultsFile: string): ReliabilityReport | undefined {
  if (!fs.existsSync(resultsFile)) return undefined;
  const rows = fs
    .readFileSync(resultsFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Row);
  if (rows.length === 0) return undefined;
  const header = ['scenario', 'faults injected', 'bad inputs tried', '5xx', 'memories lost', 'memories duplicated'];
  const body = rows.map((r) => [r.scenario, r.faults, r.badInputs, r.serverErrors, r.lost, r.duplicated].map(String));
  const table = [header, header.map(() => '---'), ...body].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
  return { table, clean: rows.every((r) => r.serverErrors === 0 && r.lost === 0 && r.duplicated === 0) };
}

function commit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

export function reliabilityMarkdown(report: ReliabilityReport, passed: number, failed: number): string {
  const cpu = os.cpus();
  return [
    '# Reliability',
    '',
    'Written by `npm run reliability`: the fault, load and attack suite of `test/reliability/` on the real stack',
    '(embedded PostgreSQL, Temporal dev server, Parse Server, worker processes). Each scenario fails its test',
    'if anything is lost, duplicated or answered with a 5xx; the table is what the run measured.',
    '',
    `- date: ${new Date().toISOString()}`,
    `- machine: ${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node.js ${process.version}`,
    `- commit: ${commit()}`,
    `- tests: ${passed} passed, ${failed} failed`,
    '',
    report.table,
    '',
  ].join('\n');
}
