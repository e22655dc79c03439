import type { Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChatPageRig, messageInput as input, startChatPage } from '../support/chat-page.ts';
import { waitFor } from '../support/wait.ts';

// The page's model picker in a real browser, against a local stack that allows a second model (the Bedrock
// emulator answers under any model id and records which one each call named).
const SECOND_MODEL = 'local.grounded-echo-mini-v1';

let rig: ChatPageRig;
let page: Page;

beforeAll(async () => {
  rig = await startChatPage({
    redisDatabase: 11,
    users: ['paula'],
    stack: { env: { ALLOWED_MODEL_IDS: SECOND_MODEL } },
  });
  page = await (await rig.newContext()).newPage();
  await page.goto(rig.web.url);
}, 120_000);

afterAll(() => rig?.close());

const picker = (p: Page) => p.getByRole('combobox', { name: 'Model' });

async function askAndWait(p: Page, text: string) {
  const before = rig.stack.bedrock.requests.length;
  await input(p).fill(text);
  await input(p).press('Enter');
  await waitFor(
    async () =>
      rig.stack.bedrock.requests.length > before &&
      (await p.getByRole('log', { name: 'Messages' }).getAttribute('aria-busy')) === 'false',
    20_000,
    'the answer',
  );
  return rig.stack.bedrock.requests.slice(before);
}

it('offers the allowed models, sends the picked one to the model, and remembers it after a reload', async () => {
  await picker(page).waitFor({ timeout: 15_000 });
  const offered = await picker(page).locator('option').allTextContents();
  expect(offered).toEqual([rig.stack.env.MODEL_ID, SECOND_MODEL]);
  // The deployment's default until someone picks.
  await expect(picker(page).inputValue()).resolves.toBe(rig.stack.env.MODEL_ID);
  const first = await askAndWait(page, 'What is an HSA?');
  expect(first.map((r) => r.modelId)).toContain(rig.stack.env.MODEL_ID);
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
      body: JSON.stringify({ object: 'list', data: [{ id: rig.stack.env.MODEL_ID, object: 'model' }] }),
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

it('breaks no rule of the deployed Content-Security-Policy and throws no uncaught error', () => {
  expect(rig.problems).toEqual([]);
});
