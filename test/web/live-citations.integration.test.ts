import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  answers,
  axeViolations,
  type ChatPageRig,
  messageInput as input,
  lastAnswerText,
  restartsIn,
  SHOTS,
  sessionIdOf,
  startChatPage,
  switchUser,
  until,
  writing,
} from '../support/chat-page.ts';

// Live in every tab, and citations, in real Chromium against the local stack: two pages of one browser
// profile (they share a BroadcastChannel), and a second context standing in for another device (it shares
// nothing but the API).
let rig: ChatPageRig;
/** One browser profile: its pages share a BroadcastChannel. */
let desktop: BrowserContext;
/** Another device: its own storage, no channel with the first. */
let device: BrowserContext;
let pageA: Page;
let pageB: Page;

beforeAll(async () => {
  rig = await startChatPage({
    redisDatabase: 3,
    users: ['ana', 'ben', 'cyd', 'dee', 'eve'],
    // Slow enough tokens that a second page has time to join an answer while it is written. Followers
    // count against the streams cap (3 by default): one turn, a following tab and a device here.
    stack: {
      firstTokenDelayMs: 150,
      perTokenDelayMs: 40,
      env: { LIMIT_TURNS_PER_MINUTE: '0', LIMIT_CONCURRENT_STREAMS: '6' },
    },
  });
  desktop = await rig.newContext({ viewport: { width: 1280, height: 800 } });
  device = await rig.newContext({ viewport: { width: 1280, height: 800 } });
  [pageA, pageB] = await Promise.all([desktop.newPage(), desktop.newPage()]);
  await Promise.all([pageA.goto(rig.web.url), pageB.goto(rig.web.url)]);
}, 90_000);

afterAll(() => rig?.close());

const questions = (p: Page) => p.locator('.message.mine .text').allTextContents();
const list = (p: Page) => p.getByRole('list', { name: 'Conversations' });

async function ask(p: Page, text: string) {
  await input(p).fill(text);
  await input(p).press('Enter');
}

async function answered(p: Page) {
  await until(
    p,
    async () => (await writing(p)) === 'false' && (await lastAnswerText(p)).length > 0,
    'the answer',
  );
}

/** Texts of the newest answer while it is written, until it is complete: proof it was followed live. */
async function watchAnswerGrow(p: Page, count: number, label: string) {
  const lengths: number[] = [];
  await until(
    p,
    async () => {
      if ((await answers(p).count()) < count) return false;
      const [busy, text] = await Promise.all([writing(p), lastAnswerText(p)]);
      if (busy === 'true' && text.length > 0 && text.length !== lengths.at(-1)) lengths.push(text.length);
      return busy === 'false' && lengths.length > 0 && text.length > 0;
    },
    label,
  );
  return lengths;
}

describe('live in every tab, and citations that look right', { timeout: 150_000 }, () => {
  it('a second tab follows the first tab’s answer as it is written, and lists the new conversation', async () => {
    await Promise.all([switchUser(pageA, 'ana'), switchUser(pageB, 'ana')]);
    await ask(pageA, 'What is an HSA?');
    await answered(pageA);
    const session = sessionIdOf(pageA);
    // Tab B lists the conversation tab A started, without a reload.
    await until(
      pageB,
      async () => (await list(pageB).getByRole('button', { name: /HSA/ }).count()) > 0,
      'the list in B',
    );
    await list(pageB).getByRole('button', { name: /HSA/ }).first().click();
    await until(
      pageB,
      async () => sessionIdOf(pageB) === session && (await answers(pageB).count()) === 1,
      'B open',
    );

    await ask(pageA, 'What is a Roth IRA?');
    const grew = await watchAnswerGrow(pageB, 2, 'the answer followed in tab B');
    expect(grew.length).toBeGreaterThanOrEqual(3);
    expect(restartsIn(grew)).toEqual([]);
    await answered(pageA);
    await expect(questions(pageB)).resolves.toEqual(['What is an HSA?', 'What is a Roth IRA?']);
    const written = await lastAnswerText(pageA);
    await until(pageB, async () => (await lastAnswerText(pageB)) === written, 'the same answer in B');
    await expect(axeViolations(pageB)).resolves.toEqual([]);
  });

  it('another device that sends while an answer runs shows that answer, not a 409 dead end, and keeps its question', async () => {
    const other = await device.newPage();
    await other.goto(`${rig.web.url}#/c/${sessionIdOf(pageA)}`);
    await switchUser(other, 'ana');
    await other.goto(`${rig.web.url}#/c/${sessionIdOf(pageA)}`);
    await until(
      other,
      async () => (await answers(other).count()) === 2,
      'the conversation on the other device',
    );

    await ask(pageA, 'What is a traditional IRA?');
    await until(
      pageA,
      async () => (await writing(pageA)) === 'true' && (await lastAnswerText(pageA)).length > 0,
      'A writing',
    );
    await ask(other, 'How big should an emergency fund be?');
    const grew = await watchAnswerGrow(other, 3, 'the running answer on the other device');
    expect(grew.length).toBeGreaterThanOrEqual(1);
    await answered(pageA);
    await until(
      other,
      async () => (await lastAnswerText(other)) === (await lastAnswerText(pageA)),
      'the same answer',
    );
    // Its own question was never stored: it waits in the box, and no refusal is left on screen.
    await expect(questions(other)).resolves.toEqual([
      'What is an HSA?',
      'What is a Roth IRA?',
      'What is a traditional IRA?',
    ]);
    await expect(input(other).inputValue()).resolves.toBe('How big should an emergency fund be?');
    await expect(
      other.getByRole('region', { name: 'Conversation', exact: true }).getByRole('alert').count(),
    ).resolves.toBe(0);
    await other.screenshot({ path: join(SHOTS, 'live-other-device-followed.png') });
    await expect(axeViolations(other)).resolves.toEqual([]);
    await other.close();
  });

  it('the list in tab B follows tab A’s rename and delete', async () => {
    const rows = list(pageA);
    await rows
      .getByRole('button', { name: /^Actions for / })
      .first()
      .click();
    await rows.getByRole('button', { name: 'Rename' }).click();
    const field = rows.getByRole('textbox', { name: /^New title for / });
    await field.fill('Health savings');
    await field.press('Enter');
    await until(
      pageB,
      async () =>
        (await list(pageB)
          .getByRole('button', { name: /^Health savings/ })
          .count()) > 0,
      'the rename in B',
    );

    await rows.getByRole('button', { name: 'Actions for Health savings' }).click();
    await rows.getByRole('button', { name: 'Delete' }).click();
    await rows.getByRole('button', { name: 'Yes, delete Health savings' }).click();
    await until(
      pageB,
      async () =>
        (await list(pageB)
          .getByRole('button', { name: /Health savings/ })
          .count()) === 0,
      'the delete in B',
    );
  });

  it('cites inline: [n] markers link to the source and show its excerpt on hover and on keyboard focus', async () => {
    await switchUser(pageA, 'ben');
    await ask(pageA, 'What is an HSA?');
    await answered(pageA);
    const answer = answers(pageA).last();
    const markers = answer.locator('.markdown .cite-ref');
    await until(pageA, async () => (await markers.count()) > 0, 'inline markers');
    // No raw [n] left in the prose: each became a marker.
    expect(await answer.locator('.markdown').evaluate((e) => e.textContent)).not.toMatch(/\[\d+\]/);
    const first = markers.first();
    const href = (await first.getAttribute('href')) ?? '';
    expect(href).toMatch(/\/documents\/hsa\.md$/);
    await expect(first.getAttribute('aria-label')).resolves.toMatch(/^Source \d+: .*HSA|health savings/i);
    const served = await fetch(href);
    expect(served.status).toBe(200);
    await expect(served.text()).resolves.toMatch(/health savings account/i);

    const tip = answer.locator('.cite-tip').first();
    await expect(tip.isVisible()).resolves.toBe(false);
    await first.hover();
    await until(pageA, () => tip.isVisible(), 'the excerpt on hover');
    const excerpt = (await tip.locator('.cite-excerpt').textContent()) ?? '';
    expect(excerpt.length).toBeGreaterThan(20);
    await pageA.mouse.move(0, 0);
    await until(pageA, async () => !(await tip.isVisible()), 'the excerpt hidden');
    await first.focus();
    await until(pageA, () => tip.isVisible(), 'the excerpt on focus');
    await expect(first.getAttribute('aria-describedby')).resolves.toBe(await tip.getAttribute('id'));
    await pageA.screenshot({ path: join(SHOTS, 'citation-excerpt-desktop.png') });
    await expect(axeViolations(pageA)).resolves.toEqual([]);

    // Every listed source is a link too; nothing under the relevance floor is listed.
    const sources = answer.getByRole('group', { name: 'Sources' });
    const links = sources.getByRole('link');
    await expect(links.count()).resolves.toBe(await sources.getByRole('listitem').count());
    for (const link of await links.all())
      await expect(link.getAttribute('href')).resolves.toMatch(/\/documents\/hsa\.md$/);
  });

  it('a follow-up retrieves with the conversation: "How big should it be?" cites the emergency fund', async () => {
    await pageA.getByRole('button', { name: 'New chat' }).click();
    await ask(pageA, 'How big should an emergency fund be?');
    await answered(pageA);
    await ask(pageA, 'How big should it be?');
    await until(pageA, async () => (await answers(pageA).count()) === 2, 'the follow-up');
    await answered(pageA);
    const answer = answers(pageA).last();
    const listed = await answer.getByRole('group', { name: 'Sources' }).getByRole('link').allTextContents();
    expect(listed[0]).toMatch(/emergency fund/i);
    expect(listed.join(' ')).not.toMatch(/401/);
    await expect(answer.locator('.markdown .cite-ref').count()).resolves.toBeGreaterThan(0);
    expect(await lastAnswerText(pageA)).not.toMatch(/I have no source/);
  });

  it('shows a conversation started in this page load when you leave it and come back (no reload)', async () => {
    const fresh = sessionIdOf(pageA);
    const answer = await lastAnswerText(pageA);
    const loads = await pageA.evaluate(() => performance.getEntriesByType('navigation').length);
    await list(pageA).getByRole('button', { name: /HSA/ }).first().click();
    await until(
      pageA,
      async () => sessionIdOf(pageA) !== fresh && (await answers(pageA).count()) === 1,
      'the other one',
    );
    await pageA.goBack();
    await until(
      pageA,
      async () => sessionIdOf(pageA) === fresh && (await lastAnswerText(pageA)) === answer,
      'back',
    );
    await expect(answers(pageA).count()).resolves.toBe(2);
    expect(await pageA.evaluate(() => performance.getEntriesByType('navigation').length)).toBe(loads);
  });

  it('breaks no rule of the deployed Content-Security-Policy and throws no uncaught error', () => {
    expect(rig.problems).toEqual([]);
  });
});
