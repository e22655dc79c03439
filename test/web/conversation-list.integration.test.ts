import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoConversationStore } from '../../functions/adapters/dynamo-store.ts';
import {
  axeViolations,
  type ChatPageRig,
  SHOTS,
  startChatPage,
  switchUser,
  until,
} from '../support/chat-page.ts';
import { chatMessage } from '../support/table.ts';

// The conversation list at scale in a real browser: 56 conversations over two months, written by the
// consumer's own writer into the stack's table (the path every message takes), then paged, grouped by
// date, searched by a word of an answer, managed from the row menu and erased, on a desktop and a phone.
const CONVERSATIONS = 56;
/** Only one answer holds it, and that conversation is older than the first page of 50. */
const RARE_WORD = 'quokka';
const DAY_MS = 86_400_000;

let rig: ChatPageRig;
let page: Page;
let rareSession = '';

/** Activity of the i-th conversation: 6 today, 4 yesterday, 10 this week, the rest over two months. */
function activityOf(i: number, now: number): number {
  const startOfToday = new Date(new Date(now).toDateString()).getTime();
  if (i < 6) return Math.max(startOfToday + 60_000, now - (i + 1) * 60_000);
  if (i < 10) return startOfToday - DAY_MS / 2 - i * 60_000;
  if (i < 20) return startOfToday - 3 * DAY_MS - i * 60_000;
  return startOfToday - (10 + (i - 20) * 1.5) * DAY_MS;
}

/** The user's conversations, written as the consumer writes them: question, then answer. */
async function seed(user: string, store: DynamoConversationStore) {
  const now = Date.now();
  for (let i = 0; i < CONVERSATIONS; i++) {
    const sessionId = rig.subject(`seed-${String(i).padStart(2, '0')}`);
    const at = activityOf(i, now);
    const rare = i === 52;
    const answer = rare
      ? `An emergency fund is like a ${RARE_WORD}: small, steady and always there.`
      : `Answer number ${i} about saving.`;
    await store.save(
      chatMessage(rig.subject(user), sessionId, 0, {
        messageId: `q-${String(at).padStart(15, '0')}-${i}`,
        content: `Question ${i} on savings`,
        createdAt: new Date(at - 2000).toISOString(),
      }),
    );
    await store.save(
      chatMessage(rig.subject(user), sessionId, 1, {
        messageId: `r-${String(at).padStart(15, '0')}-${i}`,
        content: answer,
        createdAt: new Date(at).toISOString(),
      }),
    );
    if (rare) rareSession = sessionId;
  }
}

beforeAll(async () => {
  rig = await startChatPage({
    redisDatabase: 15,
    users: ['lena', 'omar', 'pia'],
    stack: { perTokenDelayMs: 0, env: { LIMIT_TURNS_PER_MINUTE: '0' } },
  });
  const store = new DynamoConversationStore(
    DynamoDBDocumentClient.from(rig.stack.dynamodb),
    rig.stack.tableName,
  );
  await seed('lena', store);
  await seed('pia', store);
  page = await (await rig.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(rig.web.url);
}, 180_000);

afterAll(() => rig?.close());

const list = (p: Page) => p.getByRole('navigation', { name: 'Conversations' });
const rows = (p: Page) => list(p).locator('.session');
const searchBox = (p: Page) => p.getByRole('searchbox', { name: 'Search conversations' });
const results = (p: Page) => p.getByRole('region', { name: 'Search results' });
const groupLabels = (p: Page) => list(p).locator('.date-label').allTextContents();

async function api<T>(user: string, path: string): Promise<{ status: number; body: T }> {
  const response = await fetch(`${rig.stack.url}${path}`, {
    headers: { authorization: `Bearer ${await rig.stack.issuer.mint(rig.subject(user))}` },
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function searchFor(p: Page, words: string) {
  await searchBox(p).fill(words);
  await results(p).waitFor();
  await until(p, async () => (await results(p).getAttribute('aria-busy')) === 'false', 'the search');
}

const rowMenu = (scope: Locator, title: string) =>
  scope.getByRole('button', { name: `Actions for ${title}`, exact: true });

describe('the conversation list at scale, in Chromium', { timeout: 120_000 }, () => {
  it('shows the newest 50 in date groups, then the older ones on "Show older conversations"', async () => {
    await switchUser(page, 'lena');
    await until(page, async () => (await rows(page).count()) === 50, '50 rows');
    const labels = await groupLabels(page);
    expect(labels.slice(0, 4)).toEqual(['Today', 'Yesterday', 'Previous 7 days', 'Previous 30 days']);
    // Then by month, for what is older than 30 days.
    expect(labels.slice(4).every((label) => /^[A-Z][a-z]+ \d{4}$/.test(label))).toBe(true);
    expect(labels.length).toBeGreaterThan(4);
    await expect(
      list(page)
        .getByRole('button', { name: /^Question 52 on savings/ })
        .count(),
    ).resolves.toBe(0);
    expect(await axeViolations(page)).toEqual([]);

    const more = list(page).getByRole('button', { name: 'Show older conversations' });
    // The button's own click, without scrolling it into view: scrolled into view it loads by itself
    // (the phone case below), and a click racing that load can meet a button already gone.
    await more.dispatchEvent('click');
    await until(page, async () => (await rows(page).count()) === CONVERSATIONS, 'every row');
    await expect(more.count()).resolves.toBe(0);
    await list(page)
      .getByRole('button', { name: /^Question 52 on savings/ })
      .waitFor();
    // Each conversation once, newest activity first, as the API lists them.
    const titles = await list(page).locator('.session .title').allTextContents();
    expect(new Set(titles).size).toBe(CONVERSATIONS);
    expect(titles[0]).toBe('Question 0 on savings');
    expect(titles.at(-1)).toBe(`Question ${CONVERSATIONS - 1} on savings`);
    await page.screenshot({ path: join(SHOTS, 'list-paged-desktop.png') });

    // A turn's refresh of the first page keeps the older rows the person paged to.
    await page.getByRole('textbox', { name: 'Message', exact: true }).fill('What is an HSA?');
    await page.getByRole('textbox', { name: 'Message', exact: true }).press('Enter');
    await until(
      page,
      async () => (await rows(page).count()) === CONVERSATIONS + 1,
      'the new conversation in the list',
    );
    await until(
      page,
      async () => (await page.getByRole('log', { name: 'Messages' }).getAttribute('aria-busy')) === 'false',
      'the answer',
    );
    // Once the list was read again (the stored title is there), the older rows are still shown.
    await list(page).locator('.session .title', { hasText: 'What is an HSA' }).waitFor();
    await expect(rows(page).count()).resolves.toBe(CONVERSATIONS + 1);
  });

  it('finds a conversation by a word only its answer holds, beyond the first page, and opens it', async () => {
    await searchFor(page, RARE_WORD);
    const found = results(page).locator('.session');
    await expect(found.count()).resolves.toBe(1);
    await expect(found.locator('.title').textContent()).resolves.toBe('Question 52 on savings');
    expect(await axeViolations(page)).toEqual([]);
    await page.screenshot({ path: join(SHOTS, 'search-desktop.png') });
    await found.getByRole('button', { name: /^Question 52 on savings/ }).click();
    await page.waitForURL(`**#/c/${rareSession}`);
    await page.locator('.message.answer').getByText(RARE_WORD, { exact: false }).waitFor();

    // Words it holds nowhere: said so; only stopwords: the API's own sentence, no dead end.
    await searchFor(page, 'platypus');
    await results(page).getByText('No conversation holds “platypus”.').waitFor();
    await searchBox(page).fill('the and');
    await results(page)
      .getByRole('alert')
      .getByText(/stopword/)
      .waitFor();
    // Escape clears the search, and the list is back.
    await searchBox(page).press('Escape');
    await expect(searchBox(page).inputValue()).resolves.toBe('');
    await expect(results(page).count()).resolves.toBe(0);
    await until(page, async () => (await rows(page).count()) > 0, 'the list back');
    // Another user's conversations never match.
    expect((await api<{ sessions: unknown[] }>('omar', `/sessions?q=${RARE_WORD}`)).body.sessions).toEqual(
      [],
    );
  });

  it('renames, exports and deletes from the row menu of a search result', async () => {
    await searchFor(page, RARE_WORD);
    const scope = results(page);
    await rowMenu(scope, 'Question 52 on savings').click();
    // One menu button per row: its actions appear only once it is opened.
    await expect(scope.getByRole('button', { name: 'Rename' }).count()).resolves.toBe(1);
    expect(await axeViolations(page)).toEqual([]);
    await scope.getByRole('button', { name: 'Rename' }).click();
    const field = scope.getByRole('textbox', { name: 'New title for Question 52 on savings' });
    await field.fill('Marsupial money');
    await field.press('Enter');
    await scope.getByRole('button', { name: /^Marsupial money/ }).waitFor();
    // The new title is searchable too, and the list shows it.
    await list(page).locator('.session .title', { hasText: 'Marsupial money' }).first().waitFor();

    const exported = async (format: string) => {
      await rowMenu(scope, 'Marsupial money').click();
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        scope.getByRole('button', { name: `Export as ${format}` }).click(),
      ]);
      return { name: download.suggestedFilename(), text: readFileSync(await download.path(), 'utf8') };
    };
    const markdown = await exported('Markdown');
    expect(markdown.name).toBe('marsupial-money.md');
    expect(markdown.text).toMatch(
      /^# Marsupial money\n\n## You \(.+\)\n\nQuestion 52 on savings\n\n## Assistant/,
    );
    expect(markdown.text).toContain(`like a ${RARE_WORD}: small`);
    const json = await exported('JSON');
    expect(json.name).toBe('marsupial-money.json');
    expect(JSON.parse(json.text)).toMatchObject({
      id: rareSession,
      title: 'Marsupial money',
      messages: [{ role: 'user' }, { role: 'assistant', text: expect.stringContaining(RARE_WORD) }],
    });

    await rowMenu(scope, 'Marsupial money').click();
    await scope.getByRole('button', { name: 'Delete' }).click();
    await scope.getByRole('button', { name: 'Yes, delete Marsupial money' }).click();
    await until(page, async () => (await scope.locator('.session').count()) === 0, 'the result gone');
    await searchBox(page).fill('');
    await searchFor(page, RARE_WORD);
    await results(page).getByText(`No conversation holds “${RARE_WORD}”.`).waitFor();
    expect((await api('lena', `/sessions/${rareSession}`)).status).toBe(404);
    await searchBox(page).fill('');
  });

  it('erases everything behind a confirmation: the list, its older pages and the search are empty', async () => {
    await page.getByRole('button', { name: 'Erase my data…' }).click();
    await page.getByRole('button', { name: 'Cancel' }).click();
    expect((await api<{ sessions: unknown[] }>('lena', '/sessions?limit=1')).body.sessions).toHaveLength(1);
    await page.getByRole('button', { name: 'Erase my data…' }).click();
    await page.getByRole('button', { name: 'Erase everything' }).click();
    await list(page).getByText('No conversations yet.').waitFor();
    await expect(list(page).getByRole('button', { name: 'Show older conversations' }).count()).resolves.toBe(
      0,
    );
    await searchFor(page, 'savings');
    await results(page).getByText('No conversation holds “savings”.').waitFor();
    expect((await api<{ sessions: unknown[] }>('lena', '/sessions?q=savings')).body.sessions).toEqual([]);
    await searchBox(page).fill('');
  });

  it('works on a 390 px wide phone: the drawer pages, searches, and Escape clears the search before closing it', async () => {
    const mobile = await rig.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true });
    try {
      const phone = await mobile.newPage();
      await phone.goto(rig.web.url);
      await switchUser(phone, 'pia');
      const menu = phone.getByRole('button', { name: 'Conversations', exact: true });
      await menu.click();
      await until(phone, async () => (await phone.locator('#sidebar').boundingBox())?.x === 0, 'the drawer');
      await until(phone, async () => (await rows(phone).count()) === 50, '50 rows');
      // Scrolled to the end, the older ones come by themselves.
      await list(phone).getByRole('button', { name: 'Show older conversations' }).scrollIntoViewIfNeeded();
      await until(phone, async () => (await rows(phone).count()) === CONVERSATIONS, 'every row');
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

      await searchFor(phone, RARE_WORD);
      await expect(results(phone).locator('.session').count()).resolves.toBe(1);
      const box = await searchBox(phone).boundingBox();
      expect((box?.x ?? 0) + (box?.width ?? 0)).toBeLessThanOrEqual(390);
      expect(await axeViolations(phone)).toEqual([]);
      await phone.screenshot({ path: join(SHOTS, 'search-phone.png') });
      await searchBox(phone).press('Escape');
      await expect(searchBox(phone).inputValue()).resolves.toBe('');
      await expect(menu.getAttribute('aria-expanded')).resolves.toBe('true');
      await phone.keyboard.press('Escape');
      await expect(menu.getAttribute('aria-expanded')).resolves.toBe('false');
    } finally {
      await mobile.close();
    }
  });

  it('breaks no rule of the deployed Content-Security-Policy and throws no uncaught error', () => {
    expect(rig.problems).toEqual([]);
  });
});
