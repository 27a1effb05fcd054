/** Prints the README's configuration table from the config schema: `node dist/scripts/configTable.js`. */
import { configVariables, loadConfig } from '../config';

export function configTable(): string {
  const defaults = loadConfig({}) as Record<string, unknown>;
  const rows = Object.entries(configVariables).map(([name, { doc }]) => {
    const value = defaults[name];
    const shown = value === undefined ? '—' : /KEY$|PASSWORD/.test(name) ? '(local only)' : `\`${String(value)}\``;
    return `| \`${name}\` | ${shown} | ${doc} |`;
  });
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

if (require.main === module) process.stdout.write(`${configTable()}\n`);
