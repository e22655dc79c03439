import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { createDocumentClient, DynamoConversationStore } from '../functions/adapters/dynamo-store.ts';
import { DEFAULTS } from '../functions/contracts/defaults.ts';
import type { ChatMessage } from '../functions/core/messages.ts';
import { localClientConfig } from '../local/stack/client-config.ts';
import { type RequestSpec, runLoad, type Sample } from './load.ts';
import type { Latencies } from './profiles.ts';
import { QUESTIONS } from './sessions.ts';
import type { Emulators, Environment } from './stack-client.ts';
import { type Summary, summarize } from './stats.ts';

/** Turns of history each conversation starts the measured turns with. */
const HISTORY_TURNS = 20;
/** Characters of a seeded answer: about 400 tokens, a long but ordinary answer. */
const ANSWER_CHARS = 1600;

/** The environment settings this scenario runs under: the default model, a history window that holds it. */
export const longConversationEnv = (promptCaching: boolean) => ({
  MODEL_ID: DEFAULTS.modelId,
  HISTORY_LIMIT: String(HISTORY_TURNS * 2 + 10),
  PROMPT_CACHING: String(promptCaching),
});

interface LongConversationRow {
  design: 'prompt caching on' | 'prompt caching off';
  n: number;
  errors: number;
  firstToken: Summary;
  /** First token minus the injected flat model delay: our overhead plus the model's prompt reading. */
  overhead: Summary;
  promptTokensPerTurn: number;
  cacheReadTokensPerTurn: number;
  cacheWriteTokensPerTurn: number;
  /** Of the seeding turn (the first on the loaded conversation), which writes the cache. */
  firstTurnFirstToken: Summary;
}

export interface LongConversationResult {
  historyTurns: number;
  prefillMsPer1kTokens: number;
  turnsPerConversation: number;
  conversations: number;
  rows: LongConversationRow[];
  /** First token p50, off minus on. */
  savedP50Ms: number;
}

function answers(): string[] {
  const directory = join(import.meta.dirname, '..', 'local', 'knowledge-base');
  const text = readdirSync(directory)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => readFileSync(join(directory, f), 'utf8'))
    .join('\n\n')
    .replace(/\s+/g, ' ');
  const chunks: string[] = [];
  for (let i = 0; i + ANSWER_CHARS <= text.length; i += ANSWER_CHARS)
    chunks.push(text.slice(i, i + ANSWER_CHARS));
  return chunks;
}

/** A conversation of `HISTORY_TURNS` question-and-answer turns, stored as the consumer stores them. */
async function seedConversation(
  store: DynamoConversationStore,
  userId: string,
  texts: string[],
  index: number,
) {
  const sessionId = uuidv7();
  const started = Date.now() - HISTORY_TURNS * 60_000;
  for (let turn = 0; turn < HISTORY_TURNS; turn++) {
    const at = (k: number) => new Date(started + turn * 60_000 + k * 1000).toISOString();
    const question: ChatMessage = {
      messageId: uuidv7(),
      sessionId,
      userId,
      role: 'user',
      // Each conversation its own: Bedrock's cache (and the emulator's) is shared by equal prefixes.
      content: `${QUESTIONS[(turn + index) % QUESTIONS.length]} (conversation ${index + 1}, part ${turn + 1})`,
      createdAt: at(0),
    };
    const answer: ChatMessage = {
      messageId: uuidv7(),
      sessionId,
      userId,
      role: 'assistant',
      content: texts[(turn + index) % texts.length] ?? '',
      createdAt: at(1),
      stopReason: 'end_turn',
    };
    await store.save(question);
    await store.save(answer);
  }
  return sessionId;
}

/**
 * Long conversations with and without prompt caching: each conversation starts with 20 stored turns
 * (about 8,000 tokens of history); a first turn loads it (and, with caching, writes the cache), then
 * `turns` more are measured. The Bedrock emulator models the cache as documented, and the model's
 * prompt reading as `prefillMsPer1kTokens` per 1,000 tokens it did not read from the cache.
 */
export async function longConversation(options: {
  emulators: Emulators;
  environments: { on: Environment; off: Environment };
  latencies: Latencies;
  /** The model's prompt reading per 1,000 uncached tokens (the profile's). */
  prefillMsPer1kTokens: number;
  conversations: number;
  turns: number;
  log: (line: string) => void;
}): Promise<LongConversationResult> {
  const { emulators, latencies } = options;
  const store = new DynamoConversationStore(
    createDocumentClient(localClientConfig(emulators.env.AWS_ENDPOINT_URL_DYNAMODB ?? '')),
    emulators.env.TABLE_NAME ?? '',
    0,
  );
  const texts = answers();
  await emulators.setLatencies(latencies, options.prefillMsPer1kTokens);
  const rows: LongConversationRow[] = [];
  try {
    for (const [design, environment] of [
      ['prompt caching on', options.environments.on],
      ['prompt caching off', options.environments.off],
    ] as const) {
      const conversations = await Promise.all(
        Array.from({ length: options.conversations }, async (_, i) => {
          const userId = `bench-long-${i}-${uuidv7()}`;
          return {
            token: await emulators.mint(userId),
            sessionId: await seedConversation(store, userId, texts, i),
          };
        }),
      );
      const spec = (i: number, worker: number): RequestSpec => {
        const conversation = conversations[worker] ?? conversations[0];
        return {
          token: conversation?.token ?? '',
          body: {
            message: `${QUESTIONS[i % QUESTIONS.length]} And how does that fit with what we said?`,
            session_id: conversation?.sessionId,
            use_rag: false,
          },
        };
      };
      // The first turn on each conversation loads it from the table and writes the prompt cache.
      const first = await runLoad(
        environment.url,
        conversations.length,
        conversations.length,
        spec,
        latencies,
      );
      await emulators.modelStats();
      await environment.start();
      const measured = await runLoad(
        environment.url,
        conversations.length * options.turns,
        conversations.length,
        spec,
        latencies,
      );
      await environment.stop();
      const model = await emulators.modelStats();
      const samples: Sample[] = measured.samples;
      const perTurn = (v: number) => Math.round(v / Math.max(1, model.requests));
      rows.push({
        design,
        n: samples.length,
        errors: measured.errors.length + first.errors.length,
        firstToken: summarize(samples.map((s) => s.firstTokenMs)),
        overhead: summarize(samples.map((s) => s.overheadMs)),
        promptTokensPerTurn: perTurn(model.inputTokens + model.cacheReadTokens + model.cacheWriteTokens),
        cacheReadTokensPerTurn: perTurn(model.cacheReadTokens),
        cacheWriteTokensPerTurn: perTurn(model.cacheWriteTokens),
        firstTurnFirstToken: summarize(first.samples.map((s) => s.firstTokenMs)),
      });
      options.log(`long conversation, ${design} done`);
    }
  } finally {
    await emulators.setLatencies(latencies, 0);
  }
  const [on, off] = rows as [LongConversationRow, LongConversationRow];
  return {
    historyTurns: HISTORY_TURNS,
    prefillMsPer1kTokens: options.prefillMsPer1kTokens,
    turnsPerConversation: options.turns,
    conversations: options.conversations,
    rows,
    savedP50Ms: Math.round((off.firstToken.p50 - on.firstToken.p50) * 100) / 100,
  };
}
