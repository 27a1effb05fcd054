/**
 * The Python client (clients/python) against the shared stack. The README's install command, run as written with
 * the pip of a new virtual environment, installs it; its pytest suite then runs there once, and each pytest test
 * is one test here, so that the run's closing line counts it. The README's Python example runs last.
 * The environment and pytest's test ids are made at load, synchronously: `test.each` needs the ids before any test.
 */
import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../scripts/stack';
import { newUser } from '../support/helpers';
import { WEBHOOK_TEST_HOST, stackInfo } from '../support/stackInfo';
import { SERVER } from './cliProcess';

const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
const sectionStart = readme.indexOf('### Python client');
const section = readme.slice(sectionStart, readme.indexOf('\n#', sectionStart + 1));
const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map(([, language, code]) => ({ language, code: code.trim() }));
const installCommand = blocks.find(({ language }) => language === 'sh')?.code ?? '';
const example = blocks.find(({ language }) => language === 'python')?.code ?? '';
/** The pytest the project pins (requirements.txt, which `npm run setup` installs into .venv). */
const pytestPin = /^pytest==\S+$/m.exec(fs.readFileSync(path.join(PROJECT_ROOT, 'requirements.txt'), 'utf8'))?.[0] ?? 'pytest';

/** Variables of the test run that would change what Python or the client under test picks up. */
const DROPPED = ['PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV', 'MEMORY_BATCH_SERVER', 'MEMORY_BATCH_SESSION_TOKEN', 'PARSE_MASTER_KEY', 'PARSE_APP_ID'];
const baseEnv: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !DROPPED.includes(key))),
  PYTHONDONTWRITEBYTECODE: '1',
  PIP_DISABLE_PIP_VERSION_CHECK: '1',
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-batch-python-'));
const venv = path.join(dir, 'venv');
const python = path.join(venv, 'bin', 'python');
const junitFile = path.join(dir, 'pytest.xml');

function run(command: string, args: string[], timeoutMs = 300_000): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd: PROJECT_ROOT, env: baseEnv, encoding: 'utf8', timeout: timeoutMs });
}

function outputOf(result: SpawnSyncReturns<string>): string {
  return `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
}

// The README's command, word for word, with the new environment's pip (what `pip` is once it is activated).
const [pipWord, ...pipArgs] = installCommand.split(/\s+/);
const created = run('python3', ['-m', 'venv', venv], 120_000);
const install = created.status === 0 && pipWord === 'pip' ? run(path.join(venv, 'bin', 'pip'), pipArgs) : created;
const pytestInstall = install.status === 0 ? run(python, ['-m', 'pip', 'install', '--quiet', pytestPin]) : install;
const collected = pytestInstall.status === 0 ? run(python, ['-m', 'pytest', '--collect-only', '-q', '-p', 'no:cacheprovider', 'clients/python/tests'], 120_000) : pytestInstall;
const ids = collected.status === 0 ? collected.stdout.split('\n').filter((line) => line.includes('::')) : [];

interface Outcome {
  /** The junit name, `classname name`. */
  id: string;
  outcome: 'passed' | 'failed' | 'error' | 'skipped';
  message: string;
}

function unescapeXml(text: string): string {
  return text.replace(/&(#x?[0-9a-fA-F]+|quot|apos|lt|gt|amp);/g, (_, entity: string) => {
    if (entity.startsWith('#x')) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(Number(entity.slice(1)));
    return { quot: '"', apos: "'", lt: '<', gt: '>', amp: '&' }[entity] as string;
  });
}

/** How junit names a pytest test: `tests/test_a.py::TestB::test_c` is classname `tests.test_a.TestB`, name `test_c`. */
function junitName(id: string): string {
  const [file, ...rest] = id.split('::');
  const name = rest.pop() as string;
  return [[file.replace(/\.py$/, '').split('/').join('.'), ...rest].join('.'), name].join(' ');
}

function outcomesOf(xml: string): Outcome[] {
  return [...xml.matchAll(/<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g)].map(([, attributes, body = '']) => {
    const attribute = (name: string) => unescapeXml(new RegExp(`\\b${name}="([^"]*)"`).exec(attributes)?.[1] ?? '');
    const problem = /<(failure|error|skipped)\b([^>]*?)(?:\/>|>([\s\S]*?)<\/\1>)/.exec(body);
    const message = problem ? unescapeXml(`${/message="([^"]*)"/.exec(problem[2])?.[1] ?? ''}\n${problem[3] ?? ''}`).trim() : '';
    const outcome = (problem?.[1] === 'failure' ? 'failed' : (problem?.[1] ?? 'passed')) as Outcome['outcome'];
    return { id: `${attribute('classname')} ${attribute('name')}`, outcome, message };
  });
}

let outcomes: Outcome[] = [];
let pytestOutput = '';

beforeAll(async () => {
  if (!ids.length) return;
  const info = stackInfo();
  const child = spawn(python, ['-m', 'pytest', '-p', 'no:cacheprovider', '-q', '-rfE', `--junitxml=${junitFile}`, 'clients/python/tests'], {
    cwd: PROJECT_ROOT,
    env: { ...baseEnv, MEMORY_BATCH_SERVER: SERVER, PARSE_APP_ID: info.appId, PARSE_MASTER_KEY: info.masterKey, MEMORY_BATCH_WEBHOOK_HOST: WEBHOOK_TEST_HOST },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (chunk: Buffer) => (pytestOutput += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (pytestOutput += chunk.toString()));
  await new Promise((resolve) => child.once('close', resolve));
  outcomes = fs.existsSync(junitFile) ? outcomesOf(fs.readFileSync(junitFile, 'utf8')) : [];
}, 20 * 60_000);

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the README's install command, run with a new virtual environment's pip, installs the client", () => {
  expect(installCommand).toBe('pip install ./clients/python');
  expect({ status: install.status, output: install.status === 0 ? '' : outputOf(install) }).toEqual({ status: 0, output: '' });
  expect(run(python, ['-c', 'from memory_batch import BatchMemoryClient; print(BatchMemoryClient.__name__)']).stdout.trim()).toBe('BatchMemoryClient');
});

test('pytest collected the Python tests, and ran each of them once', () => {
  expect({ collected: ids.length > 0, output: ids.length ? '' : outputOf(collected) }).toEqual({ collected: true, output: '' });
  expect({ ran: outcomes.map(({ id }) => id), output: outcomes.length ? '' : pytestOutput }).toEqual({ ran: ids.map(junitName), output: '' });
});

if (ids.length) {
  test.each(ids)('pytest %s', (id) => {
    const name = junitName(id);
    const found = outcomes.find((outcome) => outcome.id === name);
    expect(found ?? { id: name, outcome: 'not run', message: pytestOutput.slice(-4000) }).toEqual({ id: name, outcome: 'passed', message: '' });
  });
}

test("the README's Python example submits, follows and reads a batch on the stack", async () => {
  expect(example.split('\n')).toHaveLength(5);
  expect(stackInfo().appId).toBe('batch-memory'); // the example leaves the app id at its default
  const { sessionToken } = await newUser('python-readme');
  // Given the session token the example leaves to its reader, and pointed at the test stack.
  const script = `session_token = ${JSON.stringify(sessionToken)}\n${example.replace('http://localhost:1337', SERVER)}\n`;
  const result = run(python, ['-c', script], 120_000);
  expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
  const lines = result.stdout.trim().split('\n');
  expect(lines).toContain('1 / 1');
  expect(lines[lines.length - 1]).toMatch(/^completed \['\w+'\]$/);
});
