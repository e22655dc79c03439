import { join } from 'node:path';
import { BedrockAgentRuntimeClient } from '@aws-sdk/client-bedrock-agent-runtime';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KnowledgeBaseRetriever, sourceUrlOf } from '../../../functions/adapters/kb-retriever.ts';
import { DEFAULTS } from '../../../functions/contracts/defaults.ts';
import type { ChatMessage, Source } from '../../../functions/core/messages.ts';
import { runTurn, type TurnInput } from '../../../functions/core/turn.ts';
import {
  type AgentRuntimeEmulator,
  startAgentRuntime,
} from '../../../local/emulators/bedrock-agent-runtime.ts';
import { localClientConfig } from '../../../local/stack/client-config.ts';
import { calls, fakeDeps, RecordingSink } from './fakes.ts';

// The turn's retrieval against the local knowledge base (BM25, stopwords) through the real adapter: what a
// follow-up retrieves with, and the relevance floor. The store and cache are the core tests' in-memory ones.
const SESSION = '01900000-0000-7000-8000-bbbbbbbbbbbb';
let emulator: AgentRuntimeEmulator;
let client: BedrockAgentRuntimeClient;

beforeAll(async () => {
  emulator = await startAgentRuntime({
    directory: join(import.meta.dirname, '../../../local/knowledge-base'),
  });
  client = new BedrockAgentRuntimeClient(localClientConfig(emulator.url, 1));
});
afterAll(async () => {
  client.destroy();
  await emulator.close();
});
beforeEach(() => {
  calls.length = 0;
});

const said = (...turns: string[]): ChatMessage[] =>
  turns.map((content, i) => ({
    messageId: `01800000-0000-7000-8000-${String(i).padStart(12, '0')}`,
    sessionId: SESSION,
    userId: 'alice',
    role: i % 2 === 0 ? 'user' : 'assistant',
    content,
    createdAt: '2026-12-04T11:00:00Z',
  }));

/** The sources a turn sends (and the prompt carries), after `history`, with the default floor unless given. */
async function sourcesOf(
  question: string,
  history: ChatMessage[],
  floor: number = DEFAULTS.ragRelevanceFloor,
) {
  const { deps } = fakeDeps();
  const retriever = new KnowledgeBaseRetriever(
    client,
    emulator.knowledgeBaseId,
    DEFAULTS.ragResults,
    'https://docs.example.com/kb/',
  );
  const run = {
    ...deps,
    retriever,
    settings: { ...deps.settings, ragTimeoutMs: 5000, ragRelevanceFloor: floor },
  };
  deps.store.messages = history;
  const input: TurnInput = {
    userId: 'alice',
    sessionId: SESSION,
    isNewSession: history.length === 0,
    message: question,
    useRag: true,
    startedAt: performance.now(),
  };
  const sink = new RecordingSink();
  await runTurn(run, input, sink);
  const event = sink.events.find((e) => e.type === 'sources');
  const sources: Source[] = event?.type === 'sources' ? event.sources : [];
  const prompt = deps.model.requests[0]?.messages.at(-1)?.content ?? '';
  return { sources, prompt, documents: [...new Set(sources.map((s) => s.uri.split('/').pop()))] };
}

describe('retrieval for a turn', () => {
  it('cites the HSA page for "What is an HSA?" and nothing under the floor', async () => {
    const { sources, documents } = await sourcesOf('What is an HSA?', []);
    expect(documents).toEqual(['hsa.md']);
    expect(sources.every((s) => s.score >= DEFAULTS.ragRelevanceFloor)).toBe(true);
  });

  it('retrieves a follow-up with the previous question: "How big should it be?" finds the emergency fund', async () => {
    const history = said('How big should an emergency fund be?', 'Three to six months of expenses.');
    const { documents, prompt } = await sourcesOf('How big should it be?', history);
    expect(documents[0]).toBe('emergency-fund.md');
    expect(documents).not.toContain('401k.md');
    expect(prompt).toMatch(/<source id="1" title="Building an emergency fund">/);
    // Without the conversation the same words find nothing relevant: no sources at all, none sent.
    const alone = await sourcesOf('How big should it be?', []);
    expect(alone.sources).toEqual([]);
    expect(alone.prompt).not.toMatch(/<sources>/);
  });

  it('still finds a new topic after another one (the question alone is retrieved too)', async () => {
    const history = said('How big should an emergency fund be?', 'Three to six months of expenses.');
    const { documents } = await sourcesOf('What is an HSA?', history);
    expect(documents[0]).toBe('hsa.md');
  });

  it('keeps every passage with a floor of 0, and links S3 sources under the source base URL', async () => {
    const { sources, prompt } = await sourcesOf('How big should it be?', [], 0);
    expect(sources).toHaveLength(DEFAULTS.ragResults);
    expect(sources.some((s) => s.score < DEFAULTS.ragRelevanceFloor)).toBe(true);
    expect(prompt).toMatch(/<sources>/);
    expect(sources[0]?.url).toMatch(/^https:\/\/docs\.example\.com\/kb\/[\w-]+\.md$/);
  });
});

describe('sourceUrlOf', () => {
  it('maps an S3 key under the base URL, keeps web addresses, and gives none without a base', () => {
    expect(sourceUrlOf('s3://bucket/docs/a b.md', 'https://x.test/kb')).toBe(
      'https://x.test/kb/docs/a%20b.md',
    );
    expect(sourceUrlOf('https://site.test/page', undefined)).toBe('https://site.test/page');
    expect(sourceUrlOf('s3://bucket/a.md', undefined)).toBeUndefined();
    expect(sourceUrlOf('', 'https://x.test/')).toBeUndefined();
  });
});
