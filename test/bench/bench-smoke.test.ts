/** The benchmark runner at smoke sizes, as a subprocess: it boots its own stack, and every scenario produces numbers; the MongoDB path's too. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MongoBenchReport } from '../../bench/mongo';
import { type BenchReport, unmeasuredFigures } from '../../bench/report';
import { PROJECT_ROOT } from '../../scripts/stack';
import { onMongo } from '../support/database';

/** Runs the benchmark runner with `args`, writing into `outputDir`; answers its exit code and output. */
async function runBench(args: string[], outputDir: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'dist/bench/run.js'), ...args], {
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
  return { code, output };
}

// The runner boots a stack of its own, whatever the suite's database: its PostgreSQL smoke run goes in the
// PostgreSQL suite run and its MongoDB path's in the MongoDB one, each once.
const postgresRun = onMongo ? test.skip : test;
const mongoRun = onMongo ? test : test.skip;

postgresRun(
  'node dist/bench/run.js --smoke runs every scenario and writes finite figures [postgres run]',
  async () => {
    const outputDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-smoke-'));
    const { code, output } = await runBench(['--smoke'], outputDir);

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
  },
  600_000,
);

mongoRun(
  'node dist/bench/run.js --mongo --smoke measures the MongoDB path against saveAll and writes its section, keeping the rest of BENCHMARKS.md [mongo run]',
  async () => {
    const outputDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-mongo-smoke-'));
    fs.writeFileSync(path.join(outputDir, 'BENCHMARKS.md'), '# Benchmarks\n\nthe other sections\n');
    const { code, output } = await runBench(['--mongo', '--smoke'], outputDir);

    expect({ code, output }).toMatchObject({ code: 0 });
    const report = JSON.parse(fs.readFileSync(path.join(outputDir, 'mongo-results.json'), 'utf8')) as MongoBenchReport;
    expect(report.rows.map((row) => row.memories)).toEqual([200, 500]);
    expect(unmeasuredFigures(report.rows)).toEqual([]);
    const markdown = fs.readFileSync(path.join(outputDir, 'BENCHMARKS.md'), 'utf8');
    expect(markdown).toMatch(/^# Benchmarks\n\nthe other sections\n\n<!-- the MongoDB path: written by bench\/mongo\.ts -->\n## The MongoDB path\n/);
    expect(markdown).toContain(`- database: ${report.database}`);
    for (const row of report.rows) expect(markdown).toContain(`| ${row.memories} |`);
    fs.rmSync(outputDir, { recursive: true, force: true });
  },
  600_000,
);
