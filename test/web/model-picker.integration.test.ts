import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RedisProcess } from '../../local/emulators/redis-server.ts';
import { type LocalStack, startLocalStack } from '../../local/stack/stack.ts';
import { startWebServer, type WebServer } from '../../local/stack/web-server.ts';
import { testRedis } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

// The page's model picker in a real browser, against a local stack that allows a second model (the Bedrock
// emulator answers under any model id and records which one each call named).
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SECOND_MODEL = 'local.grounded-echo-mini-v1';
const SUBJECT = `picker-${Date.now()}`;

let stack: LocalStack;
let web: WebServer;
let browser: Browser;
let page: Page;
let outDir: string;
let ownedRedis: RedisProcess | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`No Chromium at ${CHROMIUM}: apt-get install -y chromium, or set CHROMIUM_PATH.`);
  outDir = await mkdtemp(join(tmpdir(), 'model-picker-'));
  const redis = await testRedis(11);
  ownedRedis = redis.owned;
  [web, browser] = await Promise.all([
    startWebServer({
      mode: 'built',
      outDir,
      config: async () => ({
        apiUrl: stack.url,
        auth: { mode: 'dev', users: { paula: await stack.issuer.mint(SUBJECT) } },
      }),
    }),
    chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] }),
  ]);
  stack = await startLocalStack({
    redisUrl: redis.url,
    allowOrigins: [web.origin],
    env: { ALLOWED_MODEL_IDS: SECOND_MODEL },
  });
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

const picker = (p: Page) => p.getByRole('combobox', { name: 'Model' });
const input = (p: Page) => p.getByRole('textbox', { name: 'Message', exact: true });

async function askAndWait(p: Page, text: string) {
  const before = stack.bedrock.requests.length;
  await input(p).fill(text);
  await input(p).press('Enter');
  await waitFor(
    async () =>
      stack.bedrock.requests.length > before &&
      (await p.getByRole('log', { name: 'Messages' }).getAttribute('aria-busy')) === 'false',
    20_000,
    'the answer',
  );
  return stack.bedrock.requests.slice(before);
}

it('offers the allowed models, sends the picked one to the model, and remembers it after a reload', async () => {
  await picker(page).waitFor({ timeout: 15_000 });
  const offered = await picker(page).locator('option').allTextContents();
  expect(offered).toEqual([stack.env.MODEL_ID, SECOND_MODEL]);
  // The deployment's default until someone picks.
  await expect(picker(page).inputValue()).resolves.toBe(stack.env.MODEL_ID);
  const first = await askAndWait(page, 'What is an HSA?');
  expect(first.map((r) => r.modelId)).toContain(stack.env.MODEL_ID);
  expect(first.map((r) => r.modelId)).not.toContain(SECOND_MODEL);

  await picker(page).selectOption(SECOND_MODEL);
  const second = await askAndWait(page, 'What is a Roth IRA?');
  // The chat call names the picked model (titles may still use the title model).
  expect(second.map((r) => r.modelId)).toContain(SECOND_MODEL);

  await page.reload();
  await picker(page).waitFor({ timeout: 15_000 });
  await expect(picker(page).inputValue()).resolves.toBe(SECOND_MODEL);
}, 90_000);

it('hides the picker when the deployment allows one model', async () => {
  await page.route('**/v1/models', (route) =>
    route.fulfill({
      status: 200,
      contentType: 'application/json',
      headers: { 'access-control-allow-origin': '*' },
      body: JSON.stringify({ object: 'list', data: [{ id: stack.env.MODEL_ID, object: 'model' }] }),
    }),
  );
  const listed = page.waitForResponse((response) => response.url().endsWith('/v1/models'));
  await page.reload();
  await expect(listed.then((response) => response.json())).resolves.toMatchObject({ data: [{}] });
  await input(page).waitFor();
  // Two frames after the answer: React has rendered whatever it decided.
  await page.evaluate(
    () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))),
  );
  await expect(picker(page).count()).resolves.toBe(0);
  await page.unroute('**/v1/models');
}, 60_000);
