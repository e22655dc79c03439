import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  answers,
  axeViolations,
  type ChatPageRig,
  messageInput as input,
  lastAnswerText,
  SHOTS,
  sessionIdOf,
  startChatPage,
  until,
  writing,
} from '../support/chat-page.ts';
import { waitFor } from '../support/wait.ts';

// Versions, feedback and continue on the chat page in a real Chromium, against the local stack.
let rig: ChatPageRig;
let page: Page;

beforeAll(async () => {
  rig = await startChatPage({
    redisDatabase: 4,
    users: ['vera', 'rex', 'fay', 'cole'],
    stack: { firstTokenDelayMs: 50, perTokenDelayMs: 10 },
  });
  const context = await rig.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  await page.goto(rig.web.url);
}, 90_000);

afterAll(() => rig?.close());

const questions = (p: Page) => p.locator('.message.mine');

async function startAs(p: Page, user: string) {
  await p.getByRole('combobox', { name: 'User' }).selectOption(user);
  await p.getByRole('button', { name: 'New chat' }).click();
}

async function ask(p: Page, text: string) {
  await input(p).fill(text);
  await input(p).press('Enter');
  await answered(p);
}

/** Waits until nothing is being written and the newest answer shows as rendered text. */
async function answered(p: Page) {
  await until(
    p,
    async () => (await writing(p)) === 'false' && (await lastAnswerText(p)).length > 0,
    'the answer to finish',
  );
}

async function stored(user: string, session: string, count: number) {
  const token = await rig.stack.issuer.mint(rig.subject(user));
  return waitFor(async () => {
    const response = await fetch(`${rig.stack.url}/sessions/${session}/messages`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = (await response.json()) as {
      messages: Array<{
        id: string;
        role: string;
        text: string;
        feedback?: { rating: string; reason?: string };
      }>;
    };
    return body.messages.length === count ? body.messages : undefined;
  }, 15_000);
}

const versionCount = (p: Page, what: 'question' | 'answer', at = 0) =>
  p
    .getByRole('navigation', { name: `Versions of this ${what}` })
    .nth(at)
    .locator('.version-count')
    .textContent();

describe('versions, feedback and continue on the chat page', { timeout: 120_000 }, () => {
  it('edits a question into version 2/2; both versions read back after a reload', async () => {
    await startAs(page, 'vera');
    await ask(page, 'What is a Roth IRA?');
    const firstAnswer = await lastAnswerText(page);
    await questions(page).first().getByRole('button', { name: 'Edit' }).click();
    const box = page.getByRole('textbox', { name: 'Edit your question' });
    await box.fill('What is an HSA?');
    expect(await axeViolations(page)).toEqual([]);
    await page.getByRole('button', { name: 'Save and send' }).click();
    await until(page, async () => (await versionCount(page, 'question').catch(() => '')) === '2/2', '2/2');
    await answered(page);
    const secondAnswer = await lastAnswerText(page);
    expect(secondAnswer).not.toBe(firstAnswer);
    expect(await questions(page).count()).toBe(1);
    expect(await axeViolations(page)).toEqual([]);

    await page.reload();
    await until(
      page,
      async () => (await versionCount(page, 'question').catch(() => '')) === '2/2',
      '2/2 again',
    );
    expect(await questions(page).first().locator('.text').textContent()).toBe('What is an HSA?');
    await until(
      page,
      async () => (await lastAnswerText(page)) === secondAnswer,
      'the second answer, restored',
    );
    await page.getByRole('button', { name: 'Previous version of this question' }).click();
    await until(page, async () => (await versionCount(page, 'question')) === '1/2', '1/2');
    expect(await questions(page).first().locator('.text').textContent()).toBe('What is a Roth IRA?');
    await until(page, async () => (await lastAnswerText(page)) === firstAnswer, 'the first answer');
    await page.getByRole('button', { name: 'Next version of this question' }).click();
    await until(page, async () => (await lastAnswerText(page)) === secondAnswer, 'the second answer again');
    await answers(page).last().getByRole('button', { name: 'Good answer' }).click();
    await until(
      page,
      async () =>
        (await answers(page)
          .last()
          .getByRole('button', { name: 'Good answer' })
          .getAttribute('aria-pressed')) === 'true',
      'rated',
    );
    await page.screenshot({ path: join(SHOTS, 'screenshot-versions.png') });
  });

  it('keeps the earlier answer readable as 1/2 when regenerating', async () => {
    await startAs(page, 'rex');
    await ask(page, 'What is compound interest?');
    const firstId = await answers(page).last().getAttribute('data-message-id');
    await answers(page).last().getByRole('button', { name: 'Regenerate' }).click();
    await until(page, async () => (await versionCount(page, 'answer').catch(() => '')) === '2/2', '2/2');
    const secondId = await answers(page).last().getAttribute('data-message-id');
    expect(secondId).not.toBe(firstId);
    await page.getByRole('button', { name: 'Previous version of this answer' }).click();
    await until(page, async () => (await versionCount(page, 'answer')) === '1/2', '1/2');
    expect(await answers(page).last().getAttribute('data-message-id')).toBe(firstId);
    expect((await lastAnswerText(page)).length).toBeGreaterThan(0);
    expect(await answers(page).count()).toBe(1);
  });

  it('keeps a rating with its reason across a reload', async () => {
    await startAs(page, 'fay');
    await ask(page, 'What is an HSA?');
    await answers(page).last().getByRole('button', { name: 'Bad answer' }).click();
    await page.getByRole('textbox', { name: 'What was wrong? (optional)' }).fill('Too vague');
    expect(await axeViolations(page)).toEqual([]);
    await answers(page).last().getByRole('button', { name: 'Send' }).click();
    const session = sessionIdOf(page);
    await until(
      page,
      async () => (await stored('fay', session, 2))[1]?.feedback?.reason === 'Too vague',
      'the stored rating',
    );
    await page.reload();
    const bad = answers(page).last().getByRole('button', { name: 'Bad answer' });
    await until(
      page,
      async () => (await bad.getAttribute('aria-pressed').catch(() => '')) === 'true',
      'pressed',
    );
    expect(await answers(page).last().locator('.feedback-said').textContent()).toBe('“Too vague”');
    expect(
      await answers(page).last().getByRole('button', { name: 'Good answer' }).getAttribute('aria-pressed'),
    ).toBe('false');
  });

  it('continues a stopped answer: the stop is said on the answer, Continue asks the model to go on', async () => {
    await startAs(page, 'cole');
    rig.stack.bedrock.options.perTokenDelayMs = 60;
    try {
      await input(page).fill('What is a Roth IRA?');
      await input(page).press('Enter');
      await until(page, async () => (await lastAnswerText(page)).length > 20, 'a partial answer');
      await page.getByRole('button', { name: 'Stop' }).click();
      await page.getByRole('button', { name: 'Send' }).waitFor();
    } finally {
      rig.stack.bedrock.options.perTokenDelayMs = 10;
    }
    const stoppedAnswer = (await stored('cole', sessionIdOf(page), 2))[1]?.text ?? '';
    expect(stoppedAnswer.length).toBeGreaterThan(0);
    await until(
      page,
      async () => (await answers(page).last().locator('.ending').textContent()) === 'Stopped',
      'Stopped',
    );
    expect(await axeViolations(page)).toEqual([]);
    await page.screenshot({ path: join(SHOTS, 'screenshot-stopped.png') });
    await answers(page).last().getByRole('button', { name: 'Continue' }).click();
    await until(page, async () => (await answers(page).count()) === 2, 'a second answer');
    await answered(page);
    // The model was asked to continue with the stopped answer in its history.
    const last = rig.stack.bedrock.requests.at(-1)?.body as {
      messages: Array<{ role: string; content: Array<{ text?: string }> }>;
    };
    const texts = last.messages.map((m) => m.content.map((c) => c.text ?? '').join(''));
    expect(texts.at(-1)).toContain('Continue your answer from where it stopped.');
    expect(texts.at(-2)).toBe(stoppedAnswer);
    expect(await answers(page).first().locator('.ending').textContent()).toBe('Stopped');
    expect(rig.problems).toEqual([]);
  });
});
