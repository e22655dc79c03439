import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RedisProcess } from '../../local/emulators/redis-server.ts';
import { type LocalStack, startLocalStack } from '../../local/stack/stack.ts';
import { startWebServer, type WebServer } from '../../local/stack/web-server.ts';
import { testRedis } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

// The page's attach button in a real browser: an image and a PDF go with a question, the model (the Bedrock
// emulator) says it saw them, the sent message shows a thumbnail and a chip, and both are back after a reload.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SUBJECT = `attach-${Date.now()}`;
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

let stack: LocalStack;
let web: WebServer;
let browser: Browser;
let page: Page;
let outDir: string;
let ownedRedis: RedisProcess | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`No Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH.`);
  outDir = await mkdtemp(join(tmpdir(), 'attachments-'));
  await writeFile(join(outDir, 'chart.png'), Buffer.from(PNG, 'base64'));
  await writeFile(
    join(outDir, 'report.pdf'),
    '%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n',
  );
  const redis = await testRedis(2);
  ownedRedis = redis.owned;
  [web, browser] = await Promise.all([
    startWebServer({
      mode: 'built',
      outDir: join(outDir, 'site'),
      config: async () => ({
        apiUrl: stack.url,
        auth: { mode: 'dev', users: { paula: await stack.issuer.mint(SUBJECT) } },
      }),
    }),
    chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] }),
  ]);
  stack = await startLocalStack({ redisUrl: redis.url, allowOrigins: [web.origin] });
  page = await browser.newPage();
  await page.goto(web.url);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await web?.close();
  await stack?.close();
  await ownedRedis?.stop();
  await rm(outDir, { recursive: true, force: true });
});

const input = (p: Page) => p.getByRole('textbox', { name: 'Message', exact: true });
const log = (p: Page) => p.getByRole('log', { name: 'Messages' });

it('attaches an image and a PDF, shows them before and after sending, the model sees them, and a reload keeps them', async () => {
  await input(page).waitFor({ timeout: 15_000 });
  await page.getByLabel('Attach').setInputFiles([join(outDir, 'chart.png'), join(outDir, 'report.pdf')]);
  const composer = page.locator('form.composer');
  await composer.getByRole('img', { name: 'chart.png' }).waitFor();
  await expect(composer.getByText('report.pdf').count()).resolves.toBe(1);

  await input(page).fill('What do these show?');
  await input(page).press('Enter');
  await waitFor(
    async () =>
      (await log(page).getAttribute('aria-busy')) === 'false' &&
      (await log(page).textContent())?.includes('I see'),
    20_000,
    'the answer',
  );
  await expect(log(page).textContent()).resolves.toContain('I see 1 image (PNG) and 1 PDF named report pdf.');
  // The composer is empty again; the sent message shows the thumbnail and the chip.
  await expect(composer.getByRole('img').count()).resolves.toBe(0);
  await expect(log(page).getByRole('img', { name: 'chart.png' }).count()).resolves.toBe(1);
  await expect(log(page).getByText('report.pdf').count()).resolves.toBe(1);

  // After the consumer stored the turn, a reload shows them from the API (the image inline, the PDF as a chip).
  await waitFor(
    async () => {
      const r = await fetch(`${stack.url}/sessions`, {
        headers: { authorization: `Bearer ${await stack.issuer.mint(SUBJECT)}` },
      });
      return ((await r.json()) as { sessions: unknown[] }).sessions.length === 1;
    },
    15_000,
    'the stored conversation',
  );
  await page.reload();
  await log(page).getByRole('img', { name: 'chart.png' }).waitFor({ timeout: 15_000 });
  await expect(log(page).getByText('report.pdf').count()).resolves.toBe(1);
}, 90_000);
