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

test("the README's adoption snippet is what the host-app example (installed and run by test/plugin/existing-app.test.ts) does", () => {
  const section = readme.slice(readme.indexOf('## Add to your Parse Server'), readme.indexOf('\n## ', readme.indexOf('## Add to your Parse Server') + 1));
  const blocks = [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map(([, language, code]) => ({ language, code }));
  const app = fs.readFileSync(path.join(PROJECT_ROOT, 'examples/existing-app/app.js'), 'utf8');
  const example = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'examples/existing-app/package.json'), 'utf8')) as { dependencies: Record<string, string>; overrides: Record<string, string> };
  // Each statement of the JavaScript snippet, without its comment, is a line of the example (the options it
  // leaves to the host, `yourOptions` and `port`, are the example's own).
  const statements = blocks
    .filter(({ language }) => language === 'js')
    .flatMap(({ code }) => code.split('\n'))
    .map((line) => line.replace(/\s*\/\/.*$/, '').trim())
    .filter((line) => line && !/yourOptions|port|^\}\);$/.test(line));
  expect(statements.length).toBeGreaterThanOrEqual(5);
  const exampleLines = app.split('\n').map((line) => line.replace(/\s*\/\/.*$/, '').trim());
  expect(statements.filter((statement) => !exampleLines.includes(statement))).toEqual([]);
  // The overrides it tells hosts to add, and the install and worker commands it gives.
  const overrides = blocks.find(({ language }) => language === 'json')?.code ?? '';
  expect(example.overrides).toEqual(JSON.parse(`{${overrides}}`).overrides);
  expect(example.dependencies).toHaveProperty('parse-temporal-batch-memory');
  const commands = blocks.filter(({ language }) => language === 'sh').map(({ code }) => code.split('#')[0].trim());
  expect(commands).toEqual(['npm install parse-temporal-batch-memory', 'npx memory-batch worker']);
  expect(fs.readFileSync(path.join(PROJECT_ROOT, 'test/plugin/existing-app.test.ts'), 'utf8')).toContain("startHostProcess('npx', ['memory-batch', 'worker']");
});
