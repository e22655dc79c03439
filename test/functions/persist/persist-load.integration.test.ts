import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { messageGroupId } from '../../../functions/adapters/sqs-outbox.ts';
import { QUEUE_SETTINGS } from '../../../functions/contracts/queue.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { DRAIN_MS, type PersistQueue, persistQueue } from '../../support/persist-queue.ts';
import { chatMessage, tableReader } from '../../support/table.ts';

// The consumer under load (fauxqs, three local event-source pollers, dynalite): in the `load` project
// (`npm run test:all`), beside the benchmark's smoke run; persist.integration.test.ts has the rest.
const TEST_MS = DRAIN_MS + 30_000;
let stack: LocalStack;
let table: ReturnType<typeof tableReader>;
let queue: PersistQueue;

beforeAll(async () => {
  stack = await startLocalStack({ redisUrl: null, poller: false, visibilityTimeoutSeconds: 1 });
  table = tableReader(stack.dynamodb, stack.tableName);
  queue = persistQueue(stack, table);
});
afterAll(() => stack.close());

it(
  '1,000 messages over 50 sessions sent concurrently yield exactly 1,000 items and exact counters',
  async () => {
    const userId = `u-${uuidv7()}`;
    const sessions = Array.from({ length: 50 }, () => uuidv7());
    const perSession = new Map(
      sessions.map((s) => [s, Array.from({ length: 20 }, (_, i) => chatMessage(userId, s, i))]),
    );
    // Each session's messages go out in order (one FIFO group); the 50 sessions go concurrently.
    await Promise.all(
      sessions.map(async (s) => {
        const messages = perSession.get(s) ?? [];
        for (let i = 0; i < messages.length; i += 10) {
          await stack.sqs.send(
            new SendMessageBatchCommand({
              QueueUrl: stack.queueUrl,
              Entries: messages.slice(i, i + 10).map((m, j) => ({
                Id: String(j),
                MessageBody: JSON.stringify(m),
                MessageGroupId: messageGroupId(userId, s),
                MessageDeduplicationId: m.messageId,
              })),
            }),
          );
        }
      }),
    );
    // The production visibility timeout: with 1 s, a batch slowed by a loaded machine is handed out again
    // while it runs, and the redeliveries (idempotent, but each a full batch of work) stall the drain.
    await queue.withVisibility(QUEUE_SETTINGS.visibilityTimeoutSeconds, () =>
      queue.withPoller(() => queue.sessionCounts(userId, sessions, 20), 3),
    );
    let total = 0;
    for (const s of sessions) {
      const items = await table.messages(userId, s);
      total += items.length;
      expect(items.map((i) => i.messageId)).toEqual(perSession.get(s)?.map((m) => m.messageId));
      expect(await table.session(userId, s)).toMatchObject({
        messageCount: 20,
        lastMessageId: perSession.get(s)?.[19]?.messageId,
      });
    }
    expect(total).toBe(1000);
  },
  TEST_MS,
);
