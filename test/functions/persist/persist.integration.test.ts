import {
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SetQueueAttributesCommand,
} from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { SQSEvent } from 'aws-lambda';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoConversationStore } from '../../../functions/adapters/dynamo-store.ts';
import { messageGroupId } from '../../../functions/adapters/sqs-outbox.ts';
import { QUEUE_SETTINGS } from '../../../functions/contracts/queue.ts';
import type { ChatMessage } from '../../../functions/core/messages.ts';
import { type SqsPoller, startSqsPoller } from '../../../local/lambda-runtime/sqs-poller.ts';
import { type LocalStack, startLocalStack } from '../../../local/stack/stack.ts';
import { chatMessage, tableReader } from '../../support/table.ts';
import { waitFor } from '../../support/wait.ts';

// Integration: fauxqs (SQS FIFO + DLQ), the local event-source poller, dynalite.
const WAIT_MS = 120_000;
const TEST_MS = WAIT_MS + 30_000;
let stack: LocalStack;
let table: ReturnType<typeof tableReader>;

beforeAll(async () => {
  stack = await startLocalStack({ redisUrl: null, poller: false, visibilityTimeoutSeconds: 1 });
  table = tableReader(stack.dynamodb, stack.tableName);
});
afterAll(() => stack.close());

const send = (message: ChatMessage | string, group: string, dedup: string) =>
  stack.sqs.send(
    new SendMessageCommand({
      QueueUrl: stack.queueUrl,
      MessageBody: typeof message === 'string' ? message : JSON.stringify(message),
      MessageGroupId: group,
      MessageDeduplicationId: dedup,
    }),
  );
const sendMessage = (m: ChatMessage, dedup = m.messageId) =>
  send(m, messageGroupId(m.userId, m.sessionId), dedup);

/** The queue with another visibility timeout for `work`; the stack's 1 s makes redelivery tests quick. */
async function withVisibility<T>(seconds: number, work: () => Promise<T>): Promise<T> {
  const set = (value: number) =>
    stack.sqs.send(
      new SetQueueAttributesCommand({
        QueueUrl: stack.queueUrl,
        Attributes: { VisibilityTimeout: String(value) },
      }),
    );
  await set(seconds);
  try {
    return await work();
  } finally {
    await set(1);
  }
}

async function withPoller<T>(work: (poller: SqsPoller) => Promise<T>, count = 1): Promise<T> {
  const pollers = Array.from({ length: count }, () => stack.startPoller());
  try {
    return await work(pollers[0] as SqsPoller);
  } finally {
    await Promise.all(pollers.map((p) => p.stop()));
  }
}

/**
 * Waits until every session holds `expected` messages. The budget is for a loaded machine (the whole
 * suite beside other work): the 1,000-message test drains in seconds on an idle one.
 */
async function sessionCounts(userId: string, sessionIds: string[], expected: number) {
  const pending = new Set(sessionIds);
  await waitFor(
    async () => {
      for (const sessionId of pending)
        if ((await table.session(userId, sessionId))?.messageCount === expected) pending.delete(sessionId);
      return pending.size === 0;
    },
    WAIT_MS,
    `messageCount ${expected} in all ${sessionIds.length} sessions`,
  );
}
const sessionCount = (userId: string, sessionId: string, expected: number) =>
  sessionCounts(userId, [sessionId], expected);

function sqsEvent(messages: Array<{ body: string; group: string }>): SQSEvent {
  return {
    Records: messages.map(({ body, group }, i) => ({
      messageId: `m-${i}-${uuidv7()}`,
      receiptHandle: `r-${i}`,
      body,
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: String(Date.now()),
        SenderId: 'AIDALOCAL',
        ApproximateFirstReceiveTimestamp: String(Date.now()),
        MessageGroupId: group,
        MessageDeduplicationId: `d-${i}`,
        SequenceNumber: String(i + 1),
      },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: stack.queueArn,
      awsRegion: 'us-east-1',
    })),
  };
}

describe('persist consumer: SQS FIFO to DynamoDB', () => {
  it('sets the TTL attribute on message and session when retention is configured', async () => {
    const store = new DynamoConversationStore(
      DynamoDBDocumentClient.from(stack.dynamodb),
      stack.tableName,
      7,
    );
    const message = chatMessage(`u-${uuidv7()}`, uuidv7(), 0);
    expect((await store.save(message)).outcome).toBe('written');
    expect((await store.save(message)).outcome).toBe('duplicate');
    const expected = Math.floor(Date.parse(message.createdAt) / 1000) + 7 * 86_400;
    const [item] = await table.messages(message.userId, message.sessionId);
    expect(item?.expiresAt).toBe(expected);
    expect((await table.session(message.userId, message.sessionId))?.expiresAt).toBe(expected);
  });

  it(
    'persists a batch of 10 for one session, in order',
    async () => {
      const userId = `u-${uuidv7()}`;
      const sessionId = uuidv7();
      const messages = Array.from({ length: 10 }, (_, i) => chatMessage(userId, sessionId, i));
      for (const m of messages) await sendMessage(m);
      await withPoller(() => sessionCount(userId, sessionId, 10));
      const items = await table.messages(userId, sessionId);
      expect(items.map((i) => i.messageId)).toEqual(messages.map((m) => m.messageId));
      expect(items.map((i) => i.content)).toEqual(messages.map((m) => m.content));
      const session = await table.session(userId, sessionId);
      expect(session).toMatchObject({
        messageCount: 10,
        lastMessageId: messages[9]?.messageId,
        // Generated by the consumer after the first answer (one Converse call to the local model).
        title: 'Message 0',
        titleSource: 'generated',
      });
      expect(session?.createdAt).toBe(messages[0]?.createdAt);
      expect(session?.expiresAt).toBeUndefined();
    },
    TEST_MS,
  );

  it(
    'a message delivered twice yields one item and is counted once',
    async () => {
      const userId = `u-${uuidv7()}`;
      const sessionId = uuidv7();
      const [first, second] = [chatMessage(userId, sessionId, 0), chatMessage(userId, sessionId, 1)];
      if (!first || !second) throw new Error('unreachable');
      await sendMessage(first);
      await sendMessage(first, `${first.messageId}-redelivered`);
      await sendMessage(second);
      // FIFO order: the redelivered copy is handled before `second`, so a count of 2 means all three were.
      await withPoller(() => sessionCount(userId, sessionId, 2));
      expect(await table.messages(userId, sessionId)).toHaveLength(2);
      expect((await table.session(userId, sessionId))?.messageCount).toBe(2);
    },
    TEST_MS,
  );

  it('after a failure in a group, reports the rest of that group failed while other groups proceed', async () => {
    const userId = `u-${uuidv7()}`;
    const [sessionA, sessionB] = [uuidv7(), uuidv7()];
    const a = [0, 1, 2].map((i) => chatMessage(userId, sessionA, i));
    const b = [0, 1].map((i) => chatMessage(userId, sessionB, i));
    const groupA = messageGroupId(userId, sessionA);
    const groupB = messageGroupId(userId, sessionB);
    const event = sqsEvent([
      { body: JSON.stringify(a[0]), group: groupA },
      { body: JSON.stringify(b[0]), group: groupB },
      { body: '{"not":"a message"}', group: groupA },
      { body: JSON.stringify(a[2]), group: groupA },
      { body: JSON.stringify(b[1]), group: groupB },
    ]);
    const response = await stack.persistHandler(event, {} as never);
    const failed = new Set(response?.batchItemFailures.map((f) => f.itemIdentifier));
    const ids = event.Records.map((r) => r.messageId);
    expect(failed).toEqual(new Set([ids[2], ids[3]]));
    expect((await table.messages(userId, sessionA)).map((i) => i.messageId)).toEqual([a[0]?.messageId]);
    expect(await table.messages(userId, sessionB)).toHaveLength(2);
  });

  it(
    'retries the rest of a blocked group later, and a poison record ends in the DLQ without blocking others',
    async () => {
      const userId = `u-${uuidv7()}`;
      const [sessionA, sessionB] = [uuidv7(), uuidv7()];
      const a = [0, 1, 2].map((i) => chatMessage(userId, sessionA, i));
      const b = [0, 1, 2].map((i) => chatMessage(userId, sessionB, i));
      const poisonBody = `{"poison":"${uuidv7()}"`;
      await sendMessage(a[0] as ChatMessage);
      await send(poisonBody, messageGroupId(userId, sessionA), `poison-${userId}`);
      await sendMessage(a[1] as ChatMessage);
      await sendMessage(a[2] as ChatMessage);
      for (const m of b) await sendMessage(m);
      await withPoller(async () => {
        await sessionCount(userId, sessionB, 3);
        await sessionCount(userId, sessionA, 3);
      });
      const dlq = await waitFor(async () => {
        const { Messages = [] } = await stack.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: stack.dlqUrl,
            MaxNumberOfMessages: 10,
            MessageSystemAttributeNames: ['All'],
          }),
        );
        return Messages.find((m) => m.Body === poisonBody);
      }, WAIT_MS);
      expect(Number(dlq.Attributes?.ApproximateReceiveCount)).toBeGreaterThanOrEqual(5);
      expect((await table.messages(userId, sessionA)).map((i) => i.messageId)).toEqual(
        a.map((m) => m.messageId),
      );
    },
    TEST_MS,
  );

  it(
    'a consumer that throws mid-batch loses nothing and duplicates nothing after redelivery',
    async () => {
      const userId = `u-${uuidv7()}`;
      const sessionIds = [uuidv7(), uuidv7(), uuidv7()];
      const messages = sessionIds.flatMap((s) => [0, 1, 2, 3].map((i) => chatMessage(userId, s, i)));
      for (const m of messages) await sendMessage(m);
      let crashes = 0;
      const poller = startSqsPoller({
        sqs: stack.sqs,
        queueUrl: stack.queueUrl,
        queueArn: stack.queueArn,
        waitTimeSeconds: 1,
        handler: async (event, context) => {
          if (crashes < 2 && event.Records.length > 1) {
            crashes++;
            // Half the batch is written, then the function dies: nothing is acknowledged.
            await stack.persistHandler(
              { Records: event.Records.slice(0, Math.ceil(event.Records.length / 2)) },
              context,
            );
            throw new Error('crash mid-batch');
          }
          return stack.persistHandler(event, context);
        },
      });
      try {
        for (const s of sessionIds) await sessionCount(userId, s, 4);
      } finally {
        await poller.stop();
      }
      expect(crashes).toBe(2);
      for (const s of sessionIds) {
        const items = await table.messages(userId, s);
        expect(items.map((i) => i.messageId)).toEqual(
          messages.filter((m) => m.sessionId === s).map((m) => m.messageId),
        );
        expect((await table.session(userId, s))?.messageCount).toBe(4);
      }
    },
    TEST_MS,
  );

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
      await withVisibility(QUEUE_SETTINGS.visibilityTimeoutSeconds, () =>
        withPoller(() => sessionCounts(userId, sessions, 20), 3),
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
});
