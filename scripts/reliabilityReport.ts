/**
 * The reliability tables, printed at the end of a run and written to RELIABILITY.md by
 * `npm run reliability`: one row per scenario of test/reliability (faults injected, bad inputs tried,
 * 5xx answers, memories lost and duplicated), and one per attack (requests sent, answers, verdict).
 * Any non-zero 5xx, lost or duplicated count, or an attack not refused, fails the run.
 */
import fs from 'node:fs';
import { type Machine, describeMachine, machineLine } from './machine';

/** One scenario of test/reliability, as the tests record it. */
export interface ScenarioRecord {
  scenario: string;
  faults: number;
  badInputs: number;
  serverErrors: number;
  lost: number;
  duplicated: number;
}

/** One attack of test/reliability, as the tests record it: what was sent, what came back, and whether it was refused. */
export interface AttackRecord {
  attack: string;
  requests: number;
  /** Answers by HTTP status (or outcome, such as "not delivered"), counted by the test. */
  answers: Record<string, number>;
  refused: boolean;
}

export interface ReliabilityReport {
  table: string;
  clean: boolean;
}

function markdownTable(header: string[], rows: string[][]): string {
  return [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

export function reliabilityReport(resultsFile: string): ReliabilityReport | undefined {
  if (!fs.existsSync(resultsFile)) return undefined;
  const records = fs
    .readFileSync(resultsFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as ScenarioRecord | AttackRecord);
  const rows = records.filter((r): r is ScenarioRecord => 'scenario' in r);
  const attacks = records.filter((r): r is AttackRecord => 'attack' in r).sort((a, b) => a.attack.localeCompare(b.attack));
  if (records.length === 0) return undefined;
  const tables: string[] = [];
  if (rows.length) {
    const header = ['scenario', 'faults injected', 'bad inputs tried', '5xx', 'memories lost', 'memories duplicated'];
    tables.push(
      markdownTable(
        header,
        rows.map((r) => [r.scenario, r.faults, r.badInputs, r.serverErrors, r.lost, r.duplicated].map(String)),
      ),
    );
  }
  if (attacks.length) {
    const answers = (a: AttackRecord) =>
      Object.entries(a.answers)
        .sort(([x], [y]) => x.localeCompare(y))
        .map(([answer, count]) => `${answer} ×${count}`)
        .join(', ');
    tables.push(
      markdownTable(
        ['attack', 'requests sent', 'answers', 'verdict'],
        attacks.map((a) => [a.attack, String(a.requests), answers(a), a.refused ? 'refused' : '**NOT REFUSED**']),
      ),
    );
  }
  const clean = rows.every((r) => r.serverErrors === 0 && r.lost === 0 && r.duplicated === 0) && attacks.every((a) => a.refused);
  return { table: tables.join('\n\n'), clean };
}

/** RELIABILITY.md for `report`; `machine` is read when the run starts, so that its commit is the one the tests ran. */
export function reliabilityMarkdown(report: ReliabilityReport, passed: number, failed: number, machine: Machine = describeMachine()): string {
  return [
    '# Reliability',
    '',
    'Written by `npm run reliability`: the fault, load and attack suite of `test/reliability/` on the real stack',
    '(embedded PostgreSQL, Temporal dev server, Parse Server, worker processes). Each scenario fails its test',
    'if anything is lost, duplicated or answered with a 5xx; the tables are what the run measured. The attacks',
    'table lists each attack of a second account, an anonymous client or a hostile body, the requests sent, the',
    'answers counted by status, and whether it was refused with nothing stored, delivered or leaked.',
    '',
    `- date: ${new Date().toISOString()}`,
    `- machine: ${machineLine(machine)}`,
    `- commit: ${machine.commit.slice(0, 12)}${machine.uncommittedChanges ? ' (with uncommitted changes)' : ''}`,
    `- tests: ${passed} passed, ${failed} failed`,
    '',
    report.table,
    '',
  ].join('\n');
}
