import { request } from 'node:http';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { tableReader } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Integration: the local stack as `npm run dev` starts it (no REDIS_URL): its own cache shaped like
// ElastiCache Serverless, tokens accepted for 4 s so the function renews during the file; the poller on.
let stack: LocalStack;
const saved = process.env.REDIS_URL;
beforeAll(async () => {
  delete process.env.REDIS_URL;
  stack = await startLocalStack({ cacheTokenSeconds: 4, env: { CACHE_TIMEOUT_MS: '300' } });
});
afterAll(async () => {
  await stack.close();
  if (saved !== undefined) process.env.REDIS_URL = saved;
});

const cacheOf = (r: Awaited<ReturnType<typeof chat>>) =>
  (r.events.find((e) => e.data.type === 'done')?.data as { cache?: Record<string, string> } | undefined)
    ?.cache;

/** A POST with the given raw header lines (fetch would merge duplicates itself). */
function rawPost(url: string, headerLines: [string, string][], body: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const lines = [
      ['host', new URL(url).host],
      ...headerLines,
      ['content-length', String(Buffer.byteLength(body))],
    ];
    const req = request(url, { method: 'POST', headers: lines.flat() }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the local stack on its ElastiCache-shaped cache', () => {
  it('signs in with renewed tokens: the second turn hits the cache, also after the first token expired', async () => {
    expect(stack.env).toMatchObject({ REDIS_CLUSTER: 'true', REDIS_AUTH: 'iam' });
    const token = await stack.issuer.mint(`user-${uuidv7()}`);
    const first = await chat(stack.url, token, { message: 'What is a Roth IRA?', use_rag: false });
    const sessionId = first.events[0]?.data.session_id as string;
    const accepted = stack.cache?.tokens?.accepted ?? 0;
    await stack.cache?.tokens?.dropConnections();
    await new Promise((r) => setTimeout(r, 4500));
    await stack.cache?.tokens?.dropConnections();
    const second = await chat(stack.url, token, {
      message: 'And a 401k?',
      session_id: sessionId,
      use_rag: false,
    });
    const third = await chat(stack.url, token, {
      message: 'And an HSA?',
      session_id: sessionId,
      use_rag: false,
    });
    expect([second.status, third.status]).toEqual([200, 200]);
    expect(stack.cache?.tokens?.accepted ?? 0).toBeGreaterThan(accepted);
    // Dropped connections may mark the cache down for a probe's wait; it comes back with the renewed token.
    await waitFor(async () => {
      const again = await chat(stack.url, token, { message: 'More?', session_id: sessionId, use_rag: false });
      return cacheOf(again)?.history === 'hit' || undefined;
    });
  });

  it('answers while the cache refuses the token, and uses the cache again once it accepts it', async () => {
    const tokens = stack.cache?.tokens;
    if (!tokens) throw new Error('the stack started no shaped cache');
    const token = await stack.issuer.mint(`user-${uuidv7()}`);
    tokens.refusing = true;
    await tokens.expireAll();
    await tokens.dropConnections();
    for (let turn = 0; turn < 3; turn++) {
      const answer = await chat(stack.url, token, { message: 'What is an index fund?', use_rag: false });
      expect(answer.status).toBe(200);
      expect(answer.events.at(-1)?.data.type).toBe('done');
    }
    tokens.refusing = false;
    const first = await waitFor(async () => {
      const answer = await chat(stack.url, token, { message: 'What is inflation?', use_rag: false });
      return cacheOf(answer)?.profile === 'miss' && answer.status === 200 ? answer : undefined;
    });
    const sessionId = first.events[0]?.data.session_id as string;
    await waitFor(async () => {
      const again = await chat(stack.url, token, { message: 'More?', session_id: sessionId, use_rag: false });
      return cacheOf(again)?.history === 'hit' || undefined;
    });
  });
});

describe('two Authorization headers, as the Function URL passes them (comma-joined)', () => {
  it('refuses an ambiguous `Bearer a,Bearer b` with a 401 JSON body, even when both tokens are valid', async () => {
    const [a, b] = [await stack.issuer.mint('alice'), await stack.issuer.mint('bob')];
    const body = JSON.stringify({ message: 'hi', use_rag: false });
    const both = await rawPost(
      stack.url,
      [
        ['content-type', 'application/json'],
        ['authorization', `Bearer ${a}`],
        ['authorization', `Bearer ${b}`],
      ],
      body,
    );
    expect(both, both.body).toMatchObject({ status: 401 });
    expect(JSON.parse(both.body)).toMatchObject({ error: { code: 'unauthorized' } });
    const one = await rawPost(
      stack.url,
      [
        ['content-type', 'application/json'],
        ['authorization', `Bearer ${a}`],
      ],
      body,
    );
    expect(one.status).toBe(200);
  });
});

describe('any Unicode through the local queue and the consumer', () => {
  it('stores emoji, CJK, U+FFFE/U+FFFF and a lone surrogate exactly as typed', async () => {
    const user = `user-${uuidv7()}`;
    const token = await stack.issuer.mint(user);
    const message = 'emoji 😀👩‍👩‍👧 CJK 你好 nonchars \uFFFE\uFFFF lone \uD800 end';
    const answer = await chat(stack.url, token, { message, use_rag: false });
    expect(answer.status).toBe(200);
    const sessionId = answer.events[0]?.data.session_id as string;
    const table = tableReader(stack.dynamodb, stack.tableName);
    const stored = await waitFor(async () => {
      const items = await table.messages(user, sessionId);
      return items.length === 2 ? items : undefined;
    });
    expect(stored.find((item) => item.role === 'user')?.content).toBe(message);
  });
});
