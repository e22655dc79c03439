import { SetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import type { SqsPoller } from '../../local/lambda-runtime/sqs-poller.ts';
import type { LocalStack } from '../../local/stack/stack.ts';
import type { tableReader } from './table.ts';
import { waitFor } from './wait.ts';

/** How long a drain may take on a loaded machine (the whole suite beside other work). */
export const DRAIN_MS = 120_000;

/**
 * The consumer's queue on a local stack started with `poller: false` and a 1 s visibility timeout (quick
 * redelivery tests): pollers on demand, another visibility for a while, and waits on the table.
 */
export function persistQueue(stack: LocalStack, table: ReturnType<typeof tableReader>) {
  /** The queue with another visibility timeout for `work`. */
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

  /** Waits until every session holds `expected` messages. */
  async function sessionCounts(userId: string, sessionIds: string[], expected: number) {
    const pending = new Set(sessionIds);
    await waitFor(
      async () => {
        for (const sessionId of pending)
          if ((await table.session(userId, sessionId))?.messageCount === expected) pending.delete(sessionId);
        return pending.size === 0;
      },
      DRAIN_MS,
      `messageCount ${expected} in all ${sessionIds.length} sessions`,
    );
  }

  return { withVisibility, withPoller, sessionCounts };
}

export type PersistQueue = ReturnType<typeof persistQueue>;
