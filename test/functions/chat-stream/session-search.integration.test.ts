import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoConversationStore } from '../../../functions/adapters/dynamo-store.ts';
import type { RedisProcess } from '../../../local/emulators/redis-server.ts';
import { chat } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { testRedis } from '../../support/redis.ts';
import { chatMessage } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Integration: GET /sessions?q= on the local stack (dynalite, fauxqs, the consumer): conversations are
// written by the consumer's own writer (the path every message takes), searched through the API.
let stack: LocalStack;
let ownedRedis: RedisProcess | undefined;
let store: DynamoConversationStore;
let scanner: DynamoDBDocumentClient;

beforeAll(async () => {
  const redis = await testRedis(14);
  ownedRedis = redis.owned;
  stack = await startLocalStack({ redisUrl: redis.url, perTokenDelayMs: 0, firstTokenDelayMs: 0 });
  scanner = DynamoDBDocumentClient.from(stack.dynamodb);
  store = new DynamoConversationStore(scanner, stack.tableName);
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await ownedRedis?.stop();
});

const newUser = () => `user-${uuidv7()}`;
type Page = {
  sessions: Array<{ id: string; title: string; updated_at: string }>;
  next_cursor: string | null;
};

async function get<T = Page>(user: string, path: string) {
  const response = await fetch(`${stack.url}${path}`, {
    headers: { authorization: `Bearer ${await stack.issuer.mint(user)}` },
  });
  const text = await response.text();
  return { status: response.status, json: (text ? JSON.parse(text) : undefined) as T };
}
async function send(user: string, method: string, path: string, body?: unknown) {
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${await stack.issuer.mint(user)}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return response.status;
}
const search = (user: string, q: string, extra = '') =>
  get(user, `/sessions?q=${encodeURIComponent(q)}${extra}`);
const idsOf = (page: Page) => page.sessions.map((s) => s.id);

/** A stored conversation of one question and one answer, its activity `minutesAgo` in the past. */
async function conversation(user: string, question: string, answer: string, minutesAgo = 0) {
  const sessionId = `s-${uuidv7()}`;
  const at = Date.now() - minutesAgo * 60_000;
  await store.save(
    chatMessage(user, sessionId, 0, {
      messageId: `q-${uuidv7()}`,
      content: question,
      createdAt: new Date(at - 1000).toISOString(),
    }),
  );
  await store.save(
    chatMessage(user, sessionId, 1, {
      messageId: `a-${uuidv7()}`,
      content: answer,
      createdAt: new Date(at).toISOString(),
    }),
  );
  return sessionId;
}

/** Every item of the user's partition: a scan, so nothing hides behind a key design. */
const itemsOf = async (user: string) => {
  const { Items = [] } = await scanner.send(new ScanCommand({ TableName: stack.tableName }));
  return Items.filter((item) => item.pk === `USER#${user}`);
};

describe('GET /sessions?q= (conversation search)', () => {
  it('finds a conversation by a word of its answer or its title, only among the caller’s own', async () => {
    const alice = newUser();
    const bob = newUser();
    const budget = await conversation(
      alice,
      'How do I budget?',
      'Start with a Zeppelin-sized list of costs.',
      5,
    );
    await conversation(alice, 'What is an HSA?', 'A health savings account.', 3);
    const bobs = await conversation(bob, 'Tell me about zeppelins', 'They are airships.', 1);

    // Case, accents and a plain plural do not matter; the word is only in the answer.
    expect(idsOf((await search(alice, 'ZEPPELINS')).json)).toEqual([budget]);
    expect(idsOf((await search(alice, 'zéppelin')).json)).toEqual([budget]);
    expect(idsOf((await search(bob, 'zeppelin')).json)).toEqual([bobs]);
    // Every word must match.
    expect(idsOf((await search(alice, 'zeppelin costs')).json)).toEqual([budget]);
    expect(idsOf((await search(alice, 'zeppelin health')).json)).toEqual([]);

    // A title a person gives is searchable; the title it replaces is not.
    expect(await send(alice, 'PATCH', `/sessions/${budget}`, { title: 'Household plan' })).toBe(200);
    expect(idsOf((await search(alice, 'household')).json)).toEqual([budget]);
    expect(await send(alice, 'PATCH', `/sessions/${budget}`, { title: 'Monthly money' })).toBe(200);
    expect(idsOf((await search(alice, 'household')).json)).toEqual([]);
    const found = (await search(alice, 'monthly')).json.sessions;
    expect(found).toMatchObject([{ id: budget, title: 'Monthly money' }]);
  });

  it('finds a conversation the chat route answered, by a word only its answer holds', async () => {
    const carol = newUser();
    const token = await stack.issuer.mint(carol);
    const question = 'What is a Roth IRA?';
    const turn = await chat(stack.url, token, { message: question });
    const sessionId = turn.events[0]?.data.session_id as string;
    const answer = turn.events
      .filter((e) => e.data.type === 'token')
      .map((e) => e.data.text)
      .join('');
    const asked = new Set(question.toLowerCase().match(/\p{L}+/gu));
    const word = answer.match(/\p{L}{6,}/gu)?.find((w) => !asked.has(w.toLowerCase()));
    expect(word).toBeDefined();
    const page = await waitFor(async () => {
      const { json } = await search(carol, word ?? '');
      return json.sessions.length > 0 ? json : undefined;
    }, 10_000);
    expect(idsOf(page)).toEqual([sessionId]);
  });

  it('pages its results with a cursor, newest activity first within a page; every match exactly once', async () => {
    const dave = newUser();
    const matching: string[] = [];
    for (let i = 0; i < 5; i++)
      matching.push(await conversation(dave, `Walrus question ${i}`, 'An answer.', i));
    for (let i = 0; i < 4; i++) await conversation(dave, `Other question ${i}`, 'Nothing to see.', 10 + i);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const extra: string = `&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const { status, json } = await search(dave, 'walrus', extra);
      expect(status).toBe(200);
      expect(json.sessions.length).toBeLessThanOrEqual(2);
      const times = json.sessions.map((s) => s.updated_at);
      expect(times).toEqual([...times].sort().reverse());
      seen.push(...idsOf(json));
      cursor = json.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(cursor).toBeNull();
    expect(seen.toSorted()).toEqual(matching.toSorted());
    // One request holds them all, newest first.
    expect(idsOf((await search(dave, 'walrus', '&limit=10')).json)).toEqual(matching);
  });

  it('refuses a query that is empty, too long, only stopwords or too many words, and a cursor it did not give, with a 400 naming the field', async () => {
    const erin = newUser();
    await conversation(erin, 'A walrus', 'Yes.');
    const cases: Array<[string, string]> = [
      ['/sessions?q=', 'q'],
      [`/sessions?q=${'a'.repeat(101)}`, 'q'],
      ['/sessions?q=the%20and%20of', 'q'],
      ['/sessions?q=one%20two%20three%20four%20five%20six', 'q'],
      ['/sessions?q=walrus&cursor=not-a-cursor', 'cursor'],
      ['/sessions?q=walrus&limit=0', 'limit'],
    ];
    const listCursor = (await get(erin, '/sessions?limit=1')).json.next_cursor;
    for (const [path, field] of cases) {
      const { status, json } = await get<{ error: { code: string; field: string } }>(erin, path);
      expect({ path, status, field: json.error.field }).toEqual({ path, status: 400, field });
    }
    // A list cursor is not a search cursor (and another user's search cursor is not this user's).
    if (listCursor) {
      const { status } = await search(erin, 'walrus', `&cursor=${encodeURIComponent(listCursor)}`);
      expect(status).toBe(400);
    }
  });

  it('forgets a deleted conversation and an erased user: no match, and no search item left', async () => {
    const frank = newUser();
    const kept = await conversation(frank, 'Narwhal facts', 'Tusks.', 2);
    const deleted = await conversation(frank, 'Narwhal diet', 'Fish.', 1);
    expect(idsOf((await search(frank, 'narwhal')).json)).toEqual([deleted, kept]);

    expect(await send(frank, 'DELETE', `/sessions/${deleted}`)).toBe(204);
    expect(idsOf((await search(frank, 'narwhal')).json)).toEqual([kept]);
    expect((await itemsOf(frank)).map((i) => i.sk)).not.toContain(`SEARCH#${deleted}`);

    expect(await send(frank, 'DELETE', '/me')).toBe(204);
    expect(idsOf((await search(frank, 'narwhal')).json)).toEqual([]);
    expect((await itemsOf(frank)).map((i) => i.sk)).toEqual(['ERASED']);
  });
});
