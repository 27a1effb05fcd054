/** Runs the compiled `memory-batch` CLI as a real subprocess against the shared stack. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../../scripts/stack';
import { REST } from '../support/rest';
import { stackInfo } from '../support/stackInfo';

export const CLI = path.join(PROJECT_ROOT, 'dist/client/cli.js');
/** The server's origin, as a user would pass it to --server. */
export const SERVER = REST.replace(/\/api\/v1$/, '');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliRun {
  child: ChildProcess;
  /** Output so far; complete once `exit` resolves. */
  output: { stdout: string; stderr: string };
  exit: Promise<CliResult>;
}

/** Credentials and server the CLI may otherwise pick up from the environment of the test run. */
const CLI_VARIABLES = ['MEMORY_BATCH_SERVER', 'MEMORY_BATCH_SESSION_TOKEN', 'PARSE_MASTER_KEY', 'PARSE_APP_ID'];

export function startCli(args: string[], env: Record<string, string> = {}, stdin = ''): CliRun {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !CLI_VARIABLES.includes(key)));
  const child = spawn(process.execPath, [CLI, ...args], {
    env: {
      ...inherited,
      PARSE_APP_ID: stackInfo().appId,
      // Coverage of the CLI process is recorded with the stack's (see scripts/runTests.ts).
      ...(process.env.COVERAGE_DIR ? { NODE_V8_COVERAGE: process.env.COVERAGE_DIR } : {}),
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (output.stdout += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (output.stderr += text));
  child.stdin?.end(stdin);
  const exit = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, ...output }));
  });
  return { child, output, exit };
}

export function runCli(args: string[], env: Record<string, string> = {}, stdin = ''): Promise<CliResult> {
  return startCli(args, env, stdin).exit;
}

/** The value of one line of the CLI's summary, e.g. summaryValue(stdout, 'status'). */
export function summaryValue(stdout: string, name: string): string | undefined {
  return new RegExp(`^${name} +(.+)$`, 'm').exec(stdout)?.[1];
}
