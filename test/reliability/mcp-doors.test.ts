/**
 * Attacks on the MCP door that reach beyond one request: what the stdio server reads from the user's disk,
 * what the master key hands an agent, and how much one read of a batch's results may answer. On the shared
 * stack, with the SDK's own client; each records its row in RELIABILITY.md from what it observed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MCP_READ_MAX_BYTES } from '../../mcp/server';
import { master, memories, newUser, parse } from '../support/helpers';
import { McpClients, call, textContent, textOf } from '../support/mcpClient';
import { stackInfo } from '../support/stackInfo';
import { SERVER, runCli } from '../client/cliProcess';
import { recordAttack, recordAttackChecked, tally } from './stackApi';

const mcp = new McpClients();
const { dir } = mcp;
const connect = mcp.connect.bind(mcp);
afterAll(() => mcp.close());

test('over stdio, files are read only inside the working directory and --allow-dir: links and paths out of them are refused, and errors quote no content', async () => {
  const { sessionToken } = await newUser('mcp-file-roots');
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'memory-batch-outside-'));
  const secret = path.join(outside, 'secret.jsonl');
  fs.writeFileSync(secret, '{"content":"a secret of another folder"}\n');
  fs.symlinkSync('/etc/passwd', path.join(dir, 'passwd-link.jsonl'));
  fs.symlinkSync(secret, path.join(dir, 'secret-link.jsonl'));
  const notJson = path.join(dir, 'not-json.json');
  fs.writeFileSync(notJson, '[{"content":"ok"}, root:x:0:0:root:/root:/bin/bash]');
  try {
    const client = await connect('stdio', sessionToken);
    const attempts = [path.join(dir, 'passwd-link.jsonl'), path.join(dir, 'secret-link.jsonl'), secret, '/proc/self/environ', '/etc/passwd'];
    const refusals = [];
    for (const file of attempts) refusals.push(await call(client, 'import_memories', { path: file }));
    const badDocument = await call(client, 'import_memories', { path: notJson, wait: true });
    const P = parse();
    const stored = await new P.Query('Memory').equalTo('content', 'a secret of another folder').count(master);
    const refused = refusals.every((answer) => answer.isError && textOf(answer).includes('is outside the folders this server reads files from')) && stored === 0;
    recordAttack({
      attack: 'MCP over stdio: import_memories of links and paths out of the working directory (/etc/passwd, /proc, another folder)',
      requests: attempts.length,
      answers: tally(refusals.map((answer) => (answer.isError ? 'tool error' : 'imported'))),
      refused,
    });
    for (const [index, answer] of refusals.entries())
      expect([answer.isError, textOf(answer)]).toEqual([
        true,
        `path: ${attempts[index]} is outside the folders this server reads files from (its working directory, and memory-batch mcp --allow-dir)`,
      ]);
    expect(stored).toBe(0);
    expect(textOf(badDocument)).toContain('memories[1] is not valid JSON');
    expect(textOf(badDocument)).not.toContain('root:x');

    // The user names the other folder: its file is read.
    const allowed = await connect('stdio', sessionToken, ['--allow-dir', outside]);
    const imported = await call(allowed, 'import_memories', { path: secret, wait: true });
    expect(imported.structuredContent).toMatchObject({ status: 'completed', total: 1, processed: 1 });
  } finally {
    fs.rmSync(outside, { recursive: true, force: true });
  }
});

test('with the master key, mcp serves only with --master-key-mode, and then every tool and resource says so', async () => {
  const owner = await newUser('mcp-master');
  const userId = owner.user.id as string;
  const credentials = { PARSE_MASTER_KEY: stackInfo().masterKey };
  const outcomes: string[] = [];
  await recordAttackChecked(
    () => ({ attack: 'memory-batch mcp with PARSE_MASTER_KEY in its environment, without --master-key-mode', requests: outcomes.length, answers: tally(outcomes) }),
    async () => {
      // The master key in the environment (as a server's shell has it) is not enough.
      const unasked = await runCli(['mcp', '--user-id', userId], { PARSE_APP_ID: stackInfo().appId, MEMORY_BATCH_SERVER: SERVER, ...credentials });
      outcomes.push(`exit ${unasked.code}`);
      expect({ code: unasked.code, said: unasked.stderr }).toEqual({ code: 2, said: expect.stringContaining('--master-key-mode') });
    },
  );

  const client = await mcp.connectStdio(credentials, ['--master-key-mode', '--user-id', userId]);
  const described = [...(await client.listTools()).tools, ...(await client.listResourceTemplates()).resourceTemplates].map(({ name, description }) => ({ name, description }));
  expect(described.length).toBe(10); // eight tools, two resources
  expect(described.filter(({ description }) => !description?.includes(`MASTER-KEY MODE: imports belong to user ${userId}`))).toEqual([]);
  // A user's own session is told nothing of the kind.
  const own = await connect('stdio', owner.sessionToken);
  expect((await own.listTools()).tools.filter(({ description }) => description?.includes('MASTER-KEY MODE'))).toEqual([]);
});

test(`every MCP read of a batch's results is bounded: failures with long errors page at ${MCP_READ_MAX_BYTES / 1024} KB, and so does the results resource`, async () => {
  const { sessionToken } = await newUser('mcp-bytes');
  const client = await connect('http', sessionToken);
  const total = 150;
  // Each item refused with a 1,000-character reason: 100 of them would be about 100 KB.
  const reason = (index: number) => `refused ${index} `.padEnd(1000, 'x');
  const answer = await call(client, 'import_memories', { memories: memories(total, 40, (index) => ({ metadata: { test_reject: reason(index) } })), wait: true });
  const batchId = answer.structuredContent?.batch_id as string;
  const sizes: number[] = [];
  await recordAttackChecked(
    () => ({
      attack: `MCP reads of a batch whose ${total} failures carry 1,000-character errors (get_batch_failures at limit 100, batch://{id}/results)`,
      requests: sizes.length,
      answers: tally(sizes.map((bytes) => (bytes <= MCP_READ_MAX_BYTES ? `at most ${MCP_READ_MAX_BYTES / 1024} KB` : 'over'))),
    }),
    async () => {
      const seen: number[] = [];
      let offset: number | undefined = 0;
      while (offset !== undefined) {
        const page = (await call(client, 'get_batch_failures', { batch_id: batchId, offset, limit: 100 })).structuredContent as { failures: { index: number }[]; next_offset?: number };
        sizes.push(Buffer.byteLength(JSON.stringify(page.failures)));
        expect(page.failures.length).toBeGreaterThan(0);
        seen.push(...page.failures.map((failure) => failure.index));
        offset = page.next_offset;
      }
      expect(seen).toEqual([...Array(total).keys()]);
      const results = await client.readResource({ uri: `batch://${batchId}/results` });
      const text = textContent(results.contents[0]);
      sizes.push(Buffer.byteLength(text));
      expect(results.contents[0]._meta).toMatchObject({ truncated: true, shown: text.split('\n').filter(Boolean).length });
      expect(sizes.filter((bytes) => bytes > MCP_READ_MAX_BYTES)).toEqual([]);
    },
  );
});
