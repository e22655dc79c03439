import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisProcess, spawnRedisServer } from '../../../local/emulators/redis-server.ts';
import { chat } from '../../../local/stack/sse-client.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { tableReader } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Integration: a redis-server of this test's own, stopped mid-test; dynalite, fauxqs + poller, emulators.
let stack: LocalStack;
let redis: RedisProcess;

beforeAll(async () => {
  redis = await spawnRedisServer();
  stack = await startLocalStack({ redisUrl: redis.url, env: { CACHE_TIMEOUT_MS: '100' } });
});
afterAll(async () => {
  await stack.close();
  await redis.stop();
});

const doneOf = (r: Awaited<ReturnType<typeof chat>>) =>
  r.events.find((e) => e.data.type === 'done')?.data as { cache: Record<string, string> } | undefined;

describe('with Redis stopped', () => {
  it('answers from DynamoDB, with the earlier turn in the prompt', async () => {
    const user = `user-${uuidv7()}`;
    const token = await stack.issuer.mint(user);
    const first = await chat(stack.url, token, { message: 'What is a Roth IRA?', use_rag: false });
    const sessionId = first.events[0]?.data.session_id as string;
    const table = tableReader(stack.dynamodb, stack.tableName);
    await waitFor(async () => (await table.messages(user, sessionId)).length === 2 || undefined);

    await redis.stop();
    const second = await chat(stack.url, token, {
      message: 'And a traditional IRA?',
      session_id: sessionId,
      use_rag: false,
    });
    expect(second.status).toBe(200);
    expect(doneOf(second)?.cache).toEqual({ profile: 'miss', history: 'miss', rag: 'skipped' });
    // The consumer's title calls share the emulator: pick the chat turn's own request.
    const turnRequest = stack.bedrock.requests.findLast(
      (r) => r.body.messages?.at(-1)?.content?.[0]?.text === 'And a traditional IRA?',
    );
    expect(turnRequest?.body.messages?.map((m) => m.content?.[0]?.text)).toEqual([
      'What is a Roth IRA?',
      first.events
        .filter((e) => e.data.type === 'token')
        .map((e) => e.data.text)
        .join(''),
      'And a traditional IRA?',
    ]);
    await waitFor(async () => (await table.messages(user, sessionId)).length === 4 || undefined);
  });
});
