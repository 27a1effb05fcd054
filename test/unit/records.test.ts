/**
 * The rows the product reads are read in one place (schema/records.ts): no other source file reads a
 * product field with `.get('field')`, and every field a reader names is a field of its class.
 */
import fs from 'node:fs';
import path from 'node:path';
import Parse from 'parse/node';
import { batchMemoryResponse, batchSucceeded, statusResponse, webhookEvent } from '../../schema/answers';
import { classDefinitions } from '../../schema/classes';
import { RECORD_COLUMNS, batchRecordOf } from '../../schema/records';

const ROOT = path.join(__dirname, '..', '..');
const SOURCE_DIRS = ['cloud', 'worker', 'schema', 'storage', 'config', 'client', 'mcp', 'scripts', 'bench'];
const READERS = [path.join('schema', 'records.ts')];

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(relative);
    return entry.name.endsWith('.ts') ? [relative] : [];
  });
}

const productFields = new Set(classDefinitions.flatMap((definition) => Object.keys(definition.fields)));

/** `.get('name')` reads of a product field in `text`, as `line: code`. */
function productFieldReads(text: string): string[] {
  return text.split('\n').flatMap((line, index) => {
    const names = [...line.matchAll(/\.get\(\s*(['"`])([A-Za-z_$][\w$]*)\1\s*\)/g)].map((match) => match[2]);
    return names.some((name) => productFields.has(name)) ? [`${index + 1}: ${line.trim()}`] : [];
  });
}

test('no source file but the record readers reads a product field with .get()', () => {
  const files = ['index.ts', ...SOURCE_DIRS.flatMap(sourceFiles)].filter((file) => !READERS.includes(file));
  expect(files.length).toBeGreaterThan(30);
  const reads = files.flatMap((file) => productFieldReads(fs.readFileSync(path.join(ROOT, file), 'utf8')).map((read) => `${file}:${read}`));
  expect(reads).toEqual([]);
});

test('the check finds a product field read however it is quoted, and passes headers and other names', () => {
  expect(productFieldReads("const s = batch.get('status') as string;\nreq.get('Content-Type');\nuser.get(\"organization\");")).toEqual([
    "1: const s = batch.get('status') as string;",
    '3: user.get("organization");',
  ]);
  expect(productFieldReads("Parse.CoreManager.get('REQUEST_ATTEMPT_LIMIT'); req.get('Idempotency-Key');")).toEqual([]);
});

test('every field a record reader names is defined on its class', () => {
  for (const [className, columns] of Object.entries(RECORD_COLUMNS)) {
    const definition = classDefinitions.find((candidate) => candidate.className === className);
    expect(definition).toBeDefined();
    for (const [field] of Object.values(columns)) expect(`${className}.${field}: ${field in (definition?.fields ?? {})}`).toBe(`${className}.${field}: true`);
  }
});

test('the batch record reads every field of BatchMemoryRequest', () => {
  const definition = classDefinitions.find((candidate) => candidate.className === 'BatchMemoryRequest');
  const read = Object.values(RECORD_COLUMNS.BatchMemoryRequest).map(([field]) => field);
  expect(read.sort()).toEqual(Object.keys(definition?.fields ?? {}).sort());
});

function storedBatch(fields: Record<string, unknown>): Parse.Object {
  const organization = new Parse.Object('Organization');
  organization.id = 'org1';
  const user = new Parse.User();
  user.id = 'user1';
  return Parse.Object.fromJSON({
    className: 'BatchMemoryRequest',
    objectId: 'batch1',
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:01:00.000Z',
    organization: organization.toPointer(),
    user: user.toPointer(),
    batchFile: { __type: 'File', name: 'bmr-part-0.jsonl.gz', url: 'http://127.0.0.1/files/app/bmr-part-0.jsonl.gz' },
    status: 'pending',
    totalMemories: 3,
    ...fields,
  });
}

test('a stored batch reads as a record: pointers as ids, files as names, counts defaulting to 0', () => {
  const record = batchRecordOf(
    storedBatch({ resultsFile: { __type: 'File', name: 'bmr-results.jsonl.gz', url: 'http://127.0.0.1/x' }, completedAt: { __type: 'Date', iso: '2026-01-01T00:02:00.000Z' } }),
  );
  expect(record).toMatchObject({
    id: 'batch1',
    organizationId: 'org1',
    userId: 'user1',
    batchFileName: 'bmr-part-0.jsonl.gz',
    resultsFileName: 'bmr-results.jsonl.gz',
    processedMemories: 0,
    failedMemories: 0,
  });
  expect(record.completedAt?.toISOString()).toBe('2026-01-01T00:02:00.000Z');
});

test('a row that does not match its record is refused at the reader, naming the field', () => {
  expect(() => batchRecordOf(storedBatch({ totalMemories: 'three' }))).toThrow(/BatchMemoryRequest batch1 does not read as a record: totalMemories/);
  expect(() => batchRecordOf(storedBatch({ status: 'done' }))).toThrow(/status/);
});

test('success has one rule: no failed item, and neither failed nor cancelled', () => {
  expect(batchSucceeded({ status: 'completed', failedMemories: 0 })).toBe(true);
  expect(batchSucceeded({ status: 'processing', failedMemories: 0 })).toBe(true);
  expect(batchSucceeded({ status: 'completed', failedMemories: 1 })).toBe(false);
  expect(batchSucceeded({ status: 'cancelled', failedMemories: 0 })).toBe(false);
  expect(batchSucceeded({ status: 'failed', failedMemories: 0 })).toBe(false);
  const record = batchRecordOf(storedBatch({ status: 'cancelled', processedMemories: 1, completedAt: { __type: 'Date', iso: '2026-01-01T00:02:00.000Z' } }));
  expect(batchMemoryResponse(record, []).success).toBe(false);
  expect(webhookEvent(record, 'https://example.test/parse').batch).toMatchObject({ success: false, results_url: 'https://example.test/api/v1/memory/batch/batch1/results' });
  expect(statusResponse(record)).toMatchObject({ batch_id: 'batch1', status: 'cancelled', processed: 1, failed: 0, completed_at: '2026-01-01T00:02:00.000Z' });
});
