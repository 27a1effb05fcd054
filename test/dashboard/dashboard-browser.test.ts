/**
 * Parse Dashboard in a real browser (Debian's chromium, headless, driven by playwright-core):
 * log in, read a completed batch in the data browser, and cancel a running one with the
 * "Cancel batch" script.
 */
import fs from 'node:fs';
import { type Browser, type Page, chromium } from 'playwright-core';
import { addMemoryBatch, getBatch, memories, newUser, waitFor } from '../support/helpers';
import { stackInfo } from '../support/stackInfo';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
let browser: Browser;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (.ci/run does) or set CHROMIUM_PATH`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
});

function dashboardURL(path: string): string {
  return `${stackInfo().serverURL.replace(/\/parse$/, '/dashboard')}${path}`;
}

/** The data browser of BatchMemoryRequest, filtered to one batch. */
async function openBatch(page: Page, batchId: string): Promise<void> {
  const filters = JSON.stringify([{ field: 'objectId', constraint: 'eq', compareTo: batchId, class: 'BatchMemoryRequest' }]);
  await page.goto(dashboardURL(`/apps/Batch%20memory/browser/BatchMemoryRequest?filters=${encodeURIComponent(filters)}`));
  await page.getByText(batchId, { exact: true }).waitFor();
}

test('log in, see a completed batch with its status and counts, and cancel a running batch with the "Cancel batch" script', async () => {
  const { sessionToken } = await newUser('dashboard');
  const finished = await addMemoryBatch(sessionToken, { memories: [...memories(11), { content: 'refused', metadata: { test_reject: 'refused' } }] });
  expect(finished).toMatchObject({ status: 'completed', processed: 11, failed: 1 });
  // Each item takes 250 ms to prepare: the batch runs for about half a minute unless cancelled.
  const running = await addMemoryBatch(sessionToken, { memories: memories(400, 100, (index) => ({ metadata: { index, test_slow_ms: 250 } })), wait: false });

  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  await page.goto(dashboardURL('/login'));
  const { DASHBOARD_USER, DASHBOARD_PASSWORD } = stackInfo().env;
  await page.fill('input[name=username]', DASHBOARD_USER ?? 'admin');
  await page.fill('input[name=password]', DASHBOARD_PASSWORD ?? 'local-dashboard-password');
  await page.click('input[type=submit]');
  await page.waitForURL(/\/dashboard\/apps/);

  await openBatch(page, finished.batch_id);
  const table = await page.locator('#browser-table').innerText();
  expect(table).toMatch(/objectId[\s\S]*status[\s\S]*totalMemories[\s\S]*processedMemories[\s\S]*failedMemories/);
  const row = await page.getByText(finished.batch_id, { exact: true }).evaluate((cell) => {
    let element: Element = cell;
    while (element.parentElement && element.children.length < 6) element = element.parentElement;
    return Array.from(element.children, (child) => (child as HTMLElement).innerText.trim());
  });
  expect(row.slice(1, 6)).toEqual([finished.batch_id, 'completed', '12', '11', '1']);

  await openBatch(page, running.batch_id);
  expect(['pending', 'processing']).toContain((await getBatch(running.batch_id)).get('status'));
  await page.locator('#browser-table input[type=checkbox]').nth(1).check();
  await page.getByText('Script', { exact: true }).click();
  await page.getByText('Run script on selected row').click();
  await page.getByText('Cancel batch', { exact: true }).first().waitFor();
  await page.getByRole('button', { name: 'Run' }).click();
  // The Dashboard shows what the Cloud Function answered.
  await page.getByText(`batch ${running.batch_id} is being cancelled`).waitFor();

  const cancelled = await waitFor(
    'the batch to be cancelled',
    async () => {
      const batch = await getBatch(running.batch_id);
      return batch.get('status') === 'cancelled' && batch.get('completedAt') ? batch : undefined;
    },
    60_000,
  );
  expect(cancelled.get('processedMemories')).toBeLessThan(400);
  await page.close();
});
