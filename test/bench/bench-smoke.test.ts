/** The benchmark runner at smoke sizes, as a subprocess: it boots its own stack, and every scenario produces numbers. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BenchReport, unmeasuredFigures } from '../../bench/report';
import { PROJECT_ROOT } from '../../scripts/stack';

test('node dist/bench/run.js --smoke runs every scenario and writes finite figures', async () => {
  const outputDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'dist/bench/run.js'), '--smoke'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      BENCH_OUTPUT_DIR: outputDir,
      // Coverage of the runner and its stack's processes is recorded with the rest (see scripts/runTests.ts).
      ...(process.env.COVERAGE_DIR ? { NODE_V8_COVERAGE: process.env.COVERAGE_DIR } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));

  expect({ code, output }).toMatchObject({ code: 0 });
  expect(output).toContain('bench smoke: 6 scenarios, all produced numbers');
  const report = JSON.parse(fs.readFileSync(path.join(outputDir, 'results.json'), 'utf8')) as BenchReport;
  expect(Object.keys(report.results).sort()).toEqual(['baselines', 'claimCheck', 'concurrent', 'scaling', 'sequence', 'single']);
  expect(unmeasuredFigures(report.results)).toEqual([]);
  // The scaling uploads are processed while uploading; the largest size runs once more all or nothing, after the upload.
  expect(report.results.scaling.map((row) => `${row.memories} ${row.process}`)).toEqual(['200 while_uploading', '500 while_uploading', '500 after_upload']);
  // The COPY baseline ran beside the other two, and the product is judged against it.
  for (const row of report.results.baselines) expect(row).toMatchObject({ copyPerSecond: expect.any(Number), vsCopy: expect.any(Number) });
  expect(report.targets.length).toBeGreaterThan(0);
  expect(report.targets.every((target) => Number.isFinite(target.measured))).toBe(true);
  // The profiled upload split each process's CPU time, and the database named its statements.
  expect(unmeasuredFigures(report.profile.cpuSeconds)).toEqual([]);
  expect(report.profile.cpu.server.length).toBeGreaterThan(0);
  expect(report.profile.cpu.worker.length).toBeGreaterThan(0);
  expect(report.profile.database.statements.some((s) => s.statement.startsWith('INSERT INTO "Memory"'))).toBe(true);
  const markdown = fs.readFileSync(path.join(outputDir, 'BENCHMARKS.md'), 'utf8');
  expect(markdown).toContain('## Targets');
  expect(markdown).toContain('| PostgreSQL COPY |');
  expect(markdown).toContain('## 7. Where the time goes');
  expect(markdown).toContain('| memories | process | end to end |');
  expect(markdown).toContain('| upload and store | processing after it |');
  fs.rmSync(outputDir, { recursive: true, force: true });
}, 600_000);
