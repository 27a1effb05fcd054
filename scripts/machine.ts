/** The machine and commit a measurement ran on, for BENCHMARKS.md and RELIABILITY.md. */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { PROJECT_ROOT } from './stack';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  os: string;
  node: string;
  commit: string;
  /** The working tree differed from the commit (apart from the reports the runs write themselves). */
  uncommittedChanges: boolean;
}

function git(...args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return '';
  }
}

/** What `npm run bench` and `npm run reliability` write: a run that follows another is still on a clean tree. */
const REPORTS = ['BENCHMARKS.md', 'bench/results.json', 'bench/mongo-results.json', 'RELIABILITY.md'];

export function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    commit: git('rev-parse', 'HEAD') || 'unknown',
    uncommittedChanges: git('status', '--porcelain', '--untracked-files=no', '--', '.', ...REPORTS.map((file) => `:!${file}`)) !== '',
  };
}

/** One line: CPUs, memory, OS, Node.js. */
export function machineLine(machine: Machine): string {
  return `${machine.cpus} × ${machine.cpuModel}, ${Math.round(machine.memoryBytes / 2 ** 30)} GiB, ${machine.os}, Node.js ${machine.node}`;
}
