/** The README stays true: its configuration table is the schema's, and its two commands are the ones CI runs. */
import fs from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from '../../scripts/stack';
import { configTable } from '../../scripts/configTable';

const readme = fs.readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');

test('the configuration table matches the config schema', () => {
  const table = /<!-- config-table:start -->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme)?.[1];
  expect(table).toBe(configTable());
});

test('the README gives one command for the stack and one for the tests, and CI runs the latter', () => {
  expect(readme).toContain('npm run setup && npm start    # the whole stack on embedded defaults');
  expect(readme).toContain('npm test                      # the full test suite on the real stack');
  const ci = fs.readFileSync(path.join(PROJECT_ROOT, '.ci/run'), 'utf8');
  expect(ci).toMatch(/^npm test$/m);
  const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; overrides: Record<string, string> };
  // test/stack/local-stack.test.ts runs `npm start` itself.
  expect(pkg.scripts.start).toContain('dist/scripts/start.js');
  expect(pkg.scripts.prestart).toBe('npm run build --silent');
  expect(pkg.scripts.setup).toBe('bash scripts/setup.sh');
  const setup = fs.readFileSync(path.join(PROJECT_ROOT, 'scripts/setup.sh'), 'utf8');
  for (const step of ['-r requirements.txt', 'npm ci', 'apt-get install']) expect(setup).toContain(step);
  expect(ci).toContain('bash scripts/setup.sh');
  expect(pkg.overrides.router).toBe('2.2.0');
});
