import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { inject } from 'vitest';
import { type PageConfig, pageSecurityPolicy } from '../../functions/contracts/page-config.ts';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../local/stack/stack.ts';
import { startWebServer, type WebServer } from '../../local/stack/web-server.ts';
import { testRedis } from './redis.ts';
import { waitFor } from './wait.ts';

// The chat page in a real browser: Debian's Chromium driven by playwright-core (no browser download), the
// page built once per run (page-build.global.ts) and served on an origin of its own, the local stack on
// another, so every call crosses origins through the Function URL emulator's CORS.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** The deployed page's policy, with the local API's host: no inline script or style. */
const LOCAL_CSP = pageSecurityPolicy(['http://127.0.0.1:*'], { upgradeInsecure: false });
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
/** Where browser tests leave screenshots and measurements: ignored by git (`npm run screenshots` copies to docs/). */
export const SHOTS = join(import.meta.dirname, '..', '..', 'test-output', 'screenshots');

export interface ChatPageRig {
  stack: LocalStack;
  web: WebServer;
  browser: Browser;
  /** CSP violations and uncaught errors the browser reported against the page, in every context made here. */
  problems: string[];
  /** A local user's token subject: new each run, so nothing an earlier run left in Redis meets this one. */
  subject(user: string): string;
  /** A browser context (one profile: its pages share storage and a BroadcastChannel) that reports problems. */
  newContext(options?: Parameters<Browser['newContext']>[0]): Promise<BrowserContext>;
  close(): Promise<void>;
}

export interface ChatPageOptions {
  /** The test file's Redis database when REDIS_URL points at a shared server. */
  redisDatabase: number;
  /** The local users the page's sign-in offers (dev mode). */
  users: string[];
  stack?: Omit<LocalStackOptions, 'redisUrl' | 'allowOrigins'>;
  /** Send the deployed Content-Security-Policy with every file (default true). */
  csp?: boolean;
  /** Another sign-in than the dev users (managed login's flow), asked on every load of config.json. */
  config?: (stack: LocalStack) => PageConfig | undefined;
}

/** Starts a Redis, the local stack, the page server and Chromium for one test file. */
export async function startChatPage(options: ChatPageOptions): Promise<ChatPageRig> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `No Chromium at ${CHROMIUM}: apt-get install -y chromium (bash .ci/run does), or set CHROMIUM_PATH.`,
    );
  }
  const run = randomUUID().slice(0, 8);
  const subject = (user: string) => `${user}-${run}`;
  const redis = await testRedis(options.redisDatabase);
  let stack: LocalStack | undefined;
  const devUsers = async (api: LocalStack): Promise<PageConfig> => ({
    apiUrl: api.url,
    auth: {
      mode: 'dev',
      users: Object.fromEntries(
        await Promise.all(options.users.map(async (user) => [user, await api.issuer.mint(subject(user))])),
      ),
    },
  });
  // The page server asks for its config on each load, so it can start before the stack it points at.
  const [web, browser] = await Promise.all([
    startWebServer({
      mode: 'prebuilt',
      outDir: inject('pageBuild'),
      headers: options.csp === false ? {} : { 'content-security-policy': LOCAL_CSP },
      config: async () => {
        if (!stack) throw new Error('the local stack is not up yet');
        return options.config?.(stack) ?? devUsers(stack);
      },
    }),
    chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }),
  ]);
  stack = await startLocalStack({ ...options.stack, redisUrl: redis.url, allowOrigins: [web.origin] });
  await mkdir(SHOTS, { recursive: true });
  const problems: string[] = [];
  const started = stack;
  return {
    stack: started,
    web,
    browser,
    problems,
    subject,
    async newContext(contextOptions) {
      const context = await browser.newContext(contextOptions);
      context.on('console', (message) => {
        if (/Content.Security.Policy/i.test(message.text())) problems.push(message.text());
      });
      context.on('weberror', (error) => problems.push(String(error.error())));
      return context;
    },
    async close() {
      await browser.close();
      await web.close();
      await started.close();
      await redis.owned?.stop();
    },
  };
}

/** waitFor, and on a timeout what the page showed. */
export async function until<T>(
  page: Page,
  check: () => Promise<T | undefined | false>,
  label: string,
  timeoutMs = 20_000,
): Promise<T> {
  try {
    return await waitFor(check, timeoutMs, label);
  } catch (error) {
    const shown = await page.evaluate(() => document.body.textContent).catch(() => '(no page)');
    throw new Error(`${(error as Error).message}\n--- the page showed:\n${shown}`);
  }
}

/** axe-core's WCAG violations on the page as it is now, one line each. */
export async function axeViolations(page: Page): Promise<string[]> {
  await page.evaluate(AXE_SOURCE);
  return page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: { run(): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown }> }> }> };
      }
    ).axe;
    const { violations } = await axe.run();
    return violations.map((v) => `${v.id}: ${JSON.stringify(v.nodes.map((n) => n.target))}`);
  });
}

export const messageInput = (page: Page) => page.getByRole('textbox', { name: 'Message', exact: true });
export const answers = (page: Page) => page.locator('.message.answer');
export const writing = (page: Page) => page.getByRole('log', { name: 'Messages' }).getAttribute('aria-busy');
export const sessionIdOf = (page: Page) => /#\/c\/([A-Za-z0-9_-]+)$/.exec(page.url())?.[1] ?? '';

/**
 * The newest answer's text as rendered Markdown; '' while it is "Thinking…" or still shown as plain text
 * (the Markdown renderer is a chunk of its own, fetched after the first paint): comparing a plain and a
 * rendered form of one answer would compare line breaks, not answers.
 */
export async function lastAnswerText(page: Page): Promise<string> {
  const text = answers(page).last().locator('.text.markdown');
  return (await text.count()) ? ((await text.textContent()) ?? '') : '';
}

/** Picks a local user in the dev sign-in and waits for their conversation list. */
export async function switchUser(page: Page, user: string): Promise<void> {
  await page.getByRole('combobox', { name: 'User' }).selectOption(user);
  await page.locator('.sessions, .sidebar p.muted:not(:has-text("Loading"))').first().waitFor();
}

/** The widest Markdown mark a completing token can turn into formatting (`**`, `1. `, a fence's three). */
const MARK_WIDTH = 3;

/**
 * The rendered lengths at which a followed answer started over: each below the longest seen before it by
 * more than a mark's width (rendered Markdown may lose a mark as the next token completes it: `**x` shows
 * as text until `**x**` shows as bold). Empty for an answer that only grew.
 */
export function restartsIn(lengths: number[]): number[] {
  let longest = 0;
  const restarts: number[] = [];
  for (const length of lengths) {
    if (length < longest - MARK_WIDTH) restarts.push(length);
    longest = Math.max(longest, length);
  }
  return restarts;
}
