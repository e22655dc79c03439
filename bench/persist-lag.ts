import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import { v7 as uuidv7 } from 'uuid';
import { TABLE_KEYS, tableKeys } from '../functions/contracts/table.ts';
import { localClientConfig } from '../local/stack/client-config.ts';
import { streamTurn } from './load.ts';
import { QUESTIONS } from './sessions.ts';
import type { Emulators } from './stack-client.ts';
import { type Summary, summarize } from './stats.ts';

export interface PersistLag {
  conversations: number;
  concurrency: number;
  /** From a turn's last byte at the client to its question and answer both readable in DynamoDB, ms. */
  lagMs: Summary;
  /** The burst's wall time, and from its end to the last conversation stored, ms. */
  burstMs: number;
  drainAfterBurstMs: number;
  /** Turns that failed, and conversations never seen stored within the budget. */
  failedTurns: number;
  missing: number;
  /** How long one pass of the watcher took at most: the lag's resolution, ms. */
  pollRoundMaxMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Persistence lag as a user meets it after a burst: `conversations` new conversations (each a new user's
 * first turn) at `concurrency` into one environment, while the local consumer (the SQS event-source
 * poller and the persist function, in the emulators' process) drains the queue. A watcher scans the
 * part's own table (one paged Scan per pass, cheaper for the emulator than a Query per conversation)
 * and notes when a conversation's question and answer are both there.
 */
export async function persistLag(options: {
  emulators: Emulators;
  url: string;
  conversations: number;
  concurrency: number;
  budgetMs?: number;
}): Promise<PersistLag> {
  const { emulators, conversations, concurrency } = options;
  const endpoint = emulators.env.AWS_ENDPOINT_URL_DYNAMODB ?? '';
  const table = emulators.env.TABLE_NAME ?? '';
  const db = DynamoDBDocumentClient.from(new DynamoDBClient(localClientConfig(endpoint)));
  const tokens = await Promise.all(
    Array.from({ length: conversations }, async () => {
      const userId = `bench-persist-${uuidv7()}`;
      return { userId, token: await emulators.mint(userId) };
    }),
  );
  /** Conversations not yet seen stored, by message partition. */
  const waiting = new Map<string, { endedAt: number }>();
  const lags: number[] = [];
  let failedTurns = 0;
  let burstDone = false;
  let lastStoredAt = 0;
  let pollRoundMaxMs = 0;

  /** Message partitions holding both messages: one paged Scan of the part's own table per pass. */
  const storedPartitions = async () => {
    const messages = new Map<string, number>();
    const pages = paginateScan(
      { client: db },
      {
        TableName: table,
        FilterExpression: 'begins_with(#sk, :msg)',
        ProjectionExpression: '#pk',
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.partitionKey, '#sk': TABLE_KEYS.sortKey },
        ExpressionAttributeValues: { ':msg': 'MSG#' },
      },
    );
    for await (const page of pages) {
      for (const item of page.Items ?? []) {
        const pk = String(item[TABLE_KEYS.partitionKey]);
        messages.set(pk, (messages.get(pk) ?? 0) + 1);
      }
    }
    return new Set([...messages].filter(([, count]) => count >= 2).map(([pk]) => pk));
  };

  const watch = async (deadline: number) => {
    while (performance.now() < deadline && (!burstDone || waiting.size > 0)) {
      const round = performance.now();
      if (waiting.size > 0) {
        const stored = await storedPartitions();
        const at = performance.now();
        for (const [partition, turn] of waiting) {
          if (!stored.has(partition)) continue;
          waiting.delete(partition);
          lags.push(at - turn.endedAt);
          lastStoredAt = at;
        }
      }
      pollRoundMaxMs = Math.max(pollRoundMaxMs, performance.now() - round);
      await sleep(100);
    }
  };

  const started = performance.now();
  const watcher = watch(started + (options.budgetMs ?? 300_000));
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < conversations) {
        const index = next++;
        const { userId, token } = tokens[index] as { userId: string; token: string };
        try {
          const turn = await streamTurn(options.url, {
            token,
            body: { message: QUESTIONS[index % QUESTIONS.length] as string, use_rag: false },
          });
          if (turn.status !== 200 || !turn.sessionId) throw new Error(`status ${turn.status}`);
          waiting.set(tableKeys.messagePartition(userId, turn.sessionId), { endedAt: turn.endedAt });
        } catch {
          failedTurns++;
        }
      }
    }),
  );
  const burstEnd = performance.now();
  burstDone = true;
  await watcher;
  db.destroy();
  return {
    conversations,
    concurrency,
    lagMs: summarize(lags),
    burstMs: Math.round(burstEnd - started),
    drainAfterBurstMs: Math.round(Math.max(0, lastStoredAt - burstEnd)),
    failedTurns,
    missing: waiting.size,
    pollRoundMaxMs: Math.round(pollRoundMaxMs),
  };
}
