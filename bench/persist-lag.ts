import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { v7 as uuidv7 } from 'uuid';
import { TABLE_KEYS, tableKeys } from '../functions/contracts/table.ts';
import { localClientConfig } from '../local/client-config.ts';
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
  /** How long one pass over the conversations still waited for took at most: the lag's resolution, ms. */
  pollRoundMaxMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Persistence lag as a user meets it after a burst: `conversations` new conversations (each a new user's
 * first turn) at `concurrency` into one environment, while the local consumer (the SQS event-source
 * poller and the persist function, in the emulators' process) drains the queue. A watcher reads DynamoDB
 * directly, one Query per conversation not yet stored, and notes when both messages are there.
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
  const waiting = new Map<string, { userId: string; endedAt: number }>();
  const lags: number[] = [];
  let failedTurns = 0;
  let burstDone = false;
  let lastStoredAt = 0;
  let pollRoundMaxMs = 0;

  const stored = async (userId: string, sessionId: string) => {
    const { Count = 0 } = await db.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :msg)',
        ExpressionAttributeNames: { '#pk': TABLE_KEYS.partitionKey, '#sk': TABLE_KEYS.sortKey },
        ExpressionAttributeValues: { ':pk': tableKeys.messagePartition(userId, sessionId), ':msg': 'MSG#' },
        Select: 'COUNT',
        ConsistentRead: true,
      }),
    );
    return Count >= 2;
  };

  const watch = async (deadline: number) => {
    while (performance.now() < deadline && (!burstDone || waiting.size > 0)) {
      const round = performance.now();
      const entries = [...waiting.entries()];
      for (let i = 0; i < entries.length; i += 8) {
        await Promise.all(
          entries.slice(i, i + 8).map(async ([sessionId, turn]) => {
            if (!(await stored(turn.userId, sessionId))) return;
            const at = performance.now();
            waiting.delete(sessionId);
            lags.push(at - turn.endedAt);
            lastStoredAt = at;
          }),
        );
      }
      pollRoundMaxMs = Math.max(pollRoundMaxMs, performance.now() - round);
      await sleep(50);
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
          waiting.set(turn.sessionId, { userId, endedAt: turn.endedAt });
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
