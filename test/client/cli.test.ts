/** The `memory-batch` CLI as a real subprocess: large streamed imports, resume by idempotency key, JSON documents, results, cancel, delete, exit codes. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MemoryItem } from '../../schema/memory';
import { PROJECT_ROOT } from '../../scripts/stack';
import { closeTemporal, countMemories, duplicateMemories, getBatch, heldMemories, master, memories, newGate, newUser, parse, untilActivitiesClosed, waitFor } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';
import { SERVER, runCli, startCli, summaryValue } from './cliProcess';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-batch-cli-'));
});
afterAll(async () => {
  fs.rmSync(dir, { recursive: true, force: true });
  await closeTemporal();
});

function writeJsonl(name: string, items: MemoryItem[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, items.map((memory) => `${JSON.stringify(memory)}\n`).join(''));
  return file;
}

async function batchesOf(user: Parse.User): Promise<number> {
  return new (parse().Query)('BatchMemoryRequest').equalTo('user', user).count(master);
}

test(
  'imports a 20,000-line JSONL file: streamed as gzip NDJSON, every memory stored once, summary printed',
  async () => {
    const { sessionToken } = await newUser('cli');
    const file = writeJsonl('memories-20k.jsonl', memories(20_000, 200));
    const result = await runCli(['import', file, '--namespace', 'cli-import'], { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: sessionToken });

    expect(result.stderr).toMatch(/^uploading .*memories-20k\.jsonl \(\d+\.\d MB\)$/m);
    expect(result.stderr).toMatch(/^uploaded \d+\.\d MB; batch \w+ accepted: 20000 memories$/m);
    expect(result.stderr).toMatch(/^completed: 20000\/20000 \(processed 20000, failed 0\)$/m);
    expect(result.code).toBe(0);
    const batchId = summaryValue(result.stdout, 'batch') as string;
    expect(summaryValue(result.stdout, 'status')).toBe('completed');
    expect(summaryValue(result.stdout, 'total')).toBe('20000');
    expect(summaryValue(result.stdout, 'successful')).toBe('20000');
    expect(summaryValue(result.stdout, 'failed')).toBe('0');
    expect(summaryValue(result.stdout, 'duration')).toMatch(/^\d+\.\d s$/);
    expect(summaryValue(result.stdout, 'results')).toBe(`memory-batch results ${batchId}  (GET ${SERVER}/api/v1/memory/batch/${batchId}/results)`);

    expect(await countMemories(batchId)).toBe(20_000);
    expect(await duplicateMemories(batchId)).toBe(0);
    expect((await (await getBatch(batchId)).get('namespace').fetch(master)).get('name')).toBe('cli-import');
  },
  15 * 60_000,
);

test(
  'resume: an import interrupted after the upload, run again with the same idempotency key, finishes the same batch once',
  async () => {
    const { user, sessionToken } = await newUser('cli-resume');
    const file = writeJsonl('memories-resume.jsonl', memories(3000, 200));
    const args = ['import', file, '--server', SERVER, '--session-token', sessionToken, '--idempotency-key', 'resume-import-1'];

    const first = startCli(args);
    const accepted = await waitFor('the first run to be accepted', async () => /batch (\w+) accepted: 3000 memories/.exec(first.output.stderr)?.[1], 120_000);
    first.child.kill('SIGTERM');
    // Interrupted, it exits 143 (README's exit codes: as a shell reports SIGTERM), after saying so.
    const interrupted = await first.exit;
    expect(interrupted.code).toBe(143);
    expect(interrupted.stderr).toContain('memory-batch: interrupted (SIGTERM); a batch already accepted keeps running');

    const second = await runCli(args);
    expect(second.stderr).toContain(`batch ${accepted} matched by its idempotency key (no new batch): 3000 memories`);
    expect(second.code).toBe(0);
    expect(summaryValue(second.stdout, 'batch')).toBe(accepted);
    expect(summaryValue(second.stdout, 'status')).toBe('completed');
    expect(summaryValue(second.stdout, 'successful')).toBe('3000');
    expect(await batchesOf(user)).toBe(1);
    expect(await countMemories(accepted)).toBe(3000);
    expect(await duplicateMemories(accepted)).toBe(0);
  },
  10 * 60_000,
);

test('a JSON document ({"memories": [...]}, pretty-printed) is converted to NDJSON; failures exit 1 and are listed by `results --failed`', async () => {
  const { sessionToken } = await newUser('cli-json');
  const file = path.join(dir, 'memories.json');
  const items = memories(40, 120, (index) => (index === 7 ? { metadata: { test_reject: 'rejected for the test' } } : { tags: ['json', 'a ] , } ['] }));
  fs.writeFileSync(file, JSON.stringify({ source: 'export', memories: items }, null, 2));
  const env = { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: sessionToken };

  const imported = await runCli(['import', file], env);
  expect(imported.code).toBe(1);
  const batchId = summaryValue(imported.stdout, 'batch') as string;
  expect(summaryValue(imported.stdout, 'status')).toBe('completed');
  expect(summaryValue(imported.stdout, 'successful')).toBe('39');
  expect(summaryValue(imported.stdout, 'failed')).toBe('1');
  expect(summaryValue(imported.stdout, 'results')).toContain(`memory-batch results ${batchId} --failed`);

  const failures = await runCli(['results', batchId, '--failed'], env);
  expect(failures.code).toBe(0);
  expect(
    failures.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line)),
  ).toEqual([{ index: 7, success: false, error: 'rejected for the test', code: 'rejected' }]);
  const all = await runCli(['results', batchId], env);
  expect(all.stdout.trim().split('\n')).toHaveLength(40);

  const status = await runCli(['status', batchId], env);
  expect(status.code).toBe(0);
  expect(JSON.parse(status.stdout)).toMatchObject({ batch_id: batchId, status: 'completed', total: 40, processed: 39, failed: 1 });
  const stored = await new (parse().Query)('Memory')
    .equalTo('batch', await getBatch(batchId))
    .equalTo('batchIndex', 3)
    .first(master);
  expect(stored?.get('tags')).toEqual(['json', 'a ] , } [']);
});

test('standard input: JSON Lines by default, a JSON array with --format json; --async returns at once and `wait` follows to the end', async () => {
  const { sessionToken } = await newUser('cli-stdin');
  const env = { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: sessionToken };
  const lines = memories(5)
    .map((memory) => JSON.stringify(memory))
    .join('\n');
  const fromLines = await runCli(['import', '-'], env, lines);
  expect(fromLines.code).toBe(0);
  expect(await countMemories(summaryValue(fromLines.stdout, 'batch') as string)).toBe(5);

  const accepted = await runCli(['import', '-', '--format', 'json', '--async'], env, JSON.stringify(memories(600)));
  expect(accepted.code).toBe(0);
  const batchId = summaryValue(accepted.stdout, 'batch') as string;
  expect(summaryValue(accepted.stdout, 'follow')).toBe(`memory-batch wait ${batchId}`);
  const followed = await runCli(['wait', batchId], env);
  expect(followed.code).toBe(0);
  expect(summaryValue(followed.stdout, 'status')).toBe('completed');
  expect(await countMemories(batchId)).toBe(600);
});

test('`cancel` stops a running batch and `delete` undoes it; the master key acts for the user named by --user-id', async () => {
  const owner = await newUser('cli-cancel');
  const file = writeJsonl('memories-cancel.jsonl', heldMemories(400, newGate()));
  const asMaster = ['--server', SERVER, '--master-key', stackInfo().masterKey];
  const accepted = await runCli([...asMaster, '--user-id', owner.id, 'import', file, '--async']);
  expect(accepted.code).toBe(0);
  const batchId = summaryValue(accepted.stdout, 'batch') as string;
  expect((await getBatch(batchId)).get('user').id).toBe(owner.id);
  await waitFor('the first memories to be written', async () => (await countMemories(batchId)) > 0, 120_000);

  const cancelled = await runCli([...asMaster, 'cancel', batchId]);
  expect(cancelled.code).toBe(0);
  expect(summaryValue(cancelled.stdout, 'status')).toBe('cancelled');
  const successful = Number(summaryValue(cancelled.stdout, 'successful'));
  expect(successful).toBeLessThan(400);
  // Counted once Temporal's history shows every activity closed (some stopped mid-part): what the summary said, no more.
  const activities = await untilActivitiesClosed(batchId);
  expect(activities.cancelled).toBeGreaterThan(0);
  expect(await countMemories(batchId)).toBe(successful);

  // `delete` undoes the import and follows it until the batch is deleted; a repeat with --json answers the same.
  const deleted = await runCli([...asMaster, 'delete', batchId]);
  expect({ code: deleted.code, status: summaryValue(deleted.stdout, 'status'), removed: summaryValue(deleted.stdout, 'removed') }).toEqual({
    code: 0,
    status: 'deleted',
    removed: `${successful} memories`,
  });
  expect(await countMemories(batchId)).toBe(0);
  const repeat = await runCli([...asMaster, 'delete', batchId, '--json']);
  expect({ code: repeat.code, answer: JSON.parse(repeat.stdout) }).toEqual({ code: 0, answer: expect.objectContaining({ status: 'deleted', deleted_memories: successful }) });
});

test('--process while_uploading: a valid file completes exactly; a bad line after the first part exits 1 naming the batch, which holds the memories before it', async () => {
  const { user, sessionToken } = await newUser('cli-early');
  const env = { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: sessionToken };
  const good = await runCli(['import', writeJsonl('early.jsonl', memories(2000, 200)), '--process', 'while_uploading'], env);
  expect(good.code).toBe(0);
  const batchId = summaryValue(good.stdout, 'batch') as string;
  expect(summaryValue(good.stdout, 'successful')).toBe('2000');
  expect(await countMemories(batchId)).toBe(2000);
  expect(await duplicateMemories(batchId)).toBe(0);

  const file = path.join(dir, 'early-bad.jsonl');
  const items = memories(1000, 200).map((memory) => JSON.stringify(memory));
  items[950] = '{"content":"ok","tags":"x"}';
  fs.writeFileSync(file, `${items.join('\n')}\n`);
  const bad = await runCli(['import', file, '--process', 'while_uploading'], env);
  expect(bad).toMatchObject({ code: 1, stderr: expect.stringContaining('HTTP 400 invalid_request: invalid batch: memories[950].tags must be an array of strings') });
  const held = /batch (\w+) holds the 950 memories before it and ends failed/.exec(bad.stderr)?.[1];
  expect(held).toBeDefined();
  const failed = await waitFor('the batch of the bad file to end', async () => {
    const batch = await getBatch(held as string);
    return ['completed', 'failed', 'cancelled'].includes(batch.get('status')) ? batch : undefined;
  });
  expect({ status: failed.get('status'), total: failed.get('totalMemories'), processed: failed.get('processedMemories') }).toEqual({ status: 'failed', total: 950, processed: 950 });
  expect(await countMemories(held as string)).toBe(950);
  expect(await batchesOf(user)).toBe(2);
});

describe('exit codes and messages', () => {
  test('2 for usage errors: no credentials, a missing file, a bad option, the master key importing without --user-id', async () => {
    const noCredentials = await runCli(['import', path.join(dir, 'none.jsonl'), '--server', SERVER]);
    expect(noCredentials).toMatchObject({ code: 2, stderr: expect.stringContaining('no credentials: pass --session-token') });
    const missing = await runCli(['import', path.join(dir, 'none.jsonl')], { MEMORY_BATCH_SESSION_TOKEN: 'r:any' });
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringMatching(/cannot read .*none\.jsonl: ENOENT/) });
    const badOption = await runCli(['import', 'x.jsonl', '--timeout', '0']);
    expect(badOption).toMatchObject({ code: 2, stderr: expect.stringContaining("option '--timeout <seconds>' argument '0' is invalid") });
    const noUser = await runCli(['import', '-', '--server', SERVER, '--master-key', stackInfo().masterKey]);
    expect(noUser).toMatchObject({ code: 2, stderr: expect.stringContaining('--user-id is required with the master key') });
    expect((await runCli([])).code).toBe(2);
    expect((await runCli(['--help'])).code).toBe(0);
  });

  test('1 for server refusals (HTTP status, code, and the line or field named) and unreadable documents', async () => {
    const { sessionToken } = await newUser('cli-errors');
    const env = { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: sessionToken };
    const badLine = await runCli(['import', '-'], env, '{"content":"ok"}\n{"content":"ok","tags":"x"}\n');
    expect(badLine).toMatchObject({ code: 1, stderr: expect.stringContaining('HTTP 400 invalid_request: invalid batch: memories[1].tags must be an array of strings') });
    const badToken = await runCli(['status', 'abc123'], { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: 'r:not-a-session' });
    expect(badToken).toMatchObject({ code: 1, stderr: expect.stringContaining('HTTP 401 unauthorized: the session token is invalid or expired') });
    const unknown = await runCli(['wait', 'nosuchbatch1'], env);
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringContaining('HTTP 404 not_found: batch nosuchbatch1 not found') });
    const truncated = await runCli(['import', '-', '--format', 'json'], env, '[{"content":"a"},{"content":"b"}');
    expect(truncated).toMatchObject({ code: 1, stderr: expect.stringContaining('the input document ends before its closing bracket') });
    const badElement = await runCli(['import', '-', '--format', 'json'], env, '[{"content":"a"},{"content":"b",}]');
    expect(badElement).toMatchObject({ code: 1, stderr: expect.stringContaining('the input memories[1] is not valid JSON') });
  });
});

test('--version prints the package version and exits 0', async () => {
  const { version } = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  const answer = await runCli(['--version']);
  expect({ code: answer.code, out: answer.stdout.trim() }).toEqual({ code: 0, out: version });
});

test('--json prints one JSON object; `retry` starts a batch of the failed items and follows it; Ctrl-C exits 130', async () => {
  const { sessionToken } = await newUser('cli-retry');
  const env = { MEMORY_BATCH_SERVER: SERVER, MEMORY_BATCH_SESSION_TOKEN: sessionToken };
  const lines = memories(6, 100, (index) => (index === 2 || index === 4 ? { metadata: { test_reject: 'rejected for the test' }, custom_id: `c-${index}` } : {}))
    .map((memory) => JSON.stringify(memory))
    .join('\n');
  const imported = await runCli(['--json', 'import', '-'], env, lines);
  expect(imported.code).toBe(1);
  const batch = JSON.parse(imported.stdout) as { batch_id: string; status: string; failed: number };
  expect(imported.stdout.trim().split('\n')).toHaveLength(1);
  expect(batch).toMatchObject({ status: 'completed', total: 6, processed: 4, failed: 2 });

  // The retry's items fail again (the processor refuses them each time): exit 1, and its status names the batch retried.
  const retried = await runCli(['retry', batch.batch_id, '--json'], env);
  expect(retried.code).toBe(1);
  const retry = JSON.parse(retried.stdout) as { batch_id: string; retry_of?: string };
  expect(retried.stderr).toContain(`batch ${retry.batch_id} retries the 2 items batch ${batch.batch_id} did not store`);
  expect(retry).toMatchObject({ status: 'completed', total: 2, failed: 2, retry_of: batch.batch_id });
  const results = await runCli(['results', retry.batch_id], env);
  expect(
    results.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).original_index),
  ).toEqual([2, 4]);

  // Following a batch that runs until a gate opens, Ctrl-C: 130, and the batch keeps running.
  const gate = newGate();
  const held = await runCli(
    ['import', '-', '--async', '--json'],
    env,
    heldMemories(200, gate)
      .map((memory) => JSON.stringify(memory))
      .join('\n'),
  );
  const heldId = (JSON.parse(held.stdout) as { batch_id: string }).batch_id;
  const following = startCli(['wait', heldId], env);
  await waitFor('the wait to show progress', async () => (following.output.stderr.length > 0 ? true : undefined), 60_000);
  following.child.kill('SIGINT');
  const interrupted = await following.exit;
  gate.open();
  expect({ code: interrupted.code, said: interrupted.stderr.includes('memory-batch: interrupted (SIGINT)') }).toEqual({ code: 130, said: true });
  const finished = await runCli(['wait', heldId, '--json'], env);
  expect(JSON.parse(finished.stdout)).toMatchObject({ batch_id: heldId, status: 'completed', processed: 200 });
});
