import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChatPageRig, messageInput as input, startChatPage } from '../support/chat-page.ts';
import { waitFor } from '../support/wait.ts';

// The page's attach button in a real browser: an image and a PDF go with a question, the model (the Bedrock
// emulator) says it saw them, the sent message shows a thumbnail and a chip, and both are back after a reload.
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

let rig: ChatPageRig;
let page: Page;
/** The files a person picks. */
let files: string;

beforeAll(async () => {
  files = await mkdtemp(join(tmpdir(), 'attachments-'));
  await writeFile(join(files, 'chart.png'), Buffer.from(PNG, 'base64'));
  await writeFile(
    join(files, 'report.pdf'),
    '%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n',
  );
  rig = await startChatPage({ redisDatabase: 2, users: ['paula'] });
  page = await (await rig.newContext()).newPage();
  await page.goto(rig.web.url);
}, 120_000);

afterAll(async () => {
  await rig?.close();
  if (files) await rm(files, { recursive: true, force: true });
});

const log = (p: Page) => p.getByRole('log', { name: 'Messages' });

it('attaches an image and a PDF, shows them before and after sending, the model sees them, and a reload keeps them', async () => {
  await input(page).waitFor({ timeout: 15_000 });
  await page.getByLabel('Attach').setInputFiles([join(files, 'chart.png'), join(files, 'report.pdf')]);
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
      const r = await fetch(`${rig.stack.url}/sessions`, {
        headers: { authorization: `Bearer ${await rig.stack.issuer.mint(rig.subject('paula'))}` },
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

it('breaks no rule of the deployed Content-Security-Policy and throws no uncaught error', () => {
  expect(rig.problems).toEqual([]);
});
