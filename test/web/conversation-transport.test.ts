import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../web/src/api.ts';
import { ConversationTransport, holdsFinishedAnswer } from '../../web/src/conversation-transport.ts';

// The page's resume: a replay of an answer the page already holds finished is skipped, any other
// replay passes through whole (its first chunk included).

const REPLAY = [
  { type: 'start', messageId: 'a-2' },
  { type: 'text-start', id: 't' },
  { type: 'text-delta', id: 't', delta: 'Hello' },
  { type: 'text-end', id: 't' },
  { type: 'finish' },
];

function transportFor(messages: ChatMessage[]) {
  const fetch = async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of REPLAY)
          controller.enqueue(new TextEncoder().encode(`data: ${JSON.stringify(chunk)}\n\n`));
        controller.close();
      },
    });
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
  };
  const transport = new ConversationTransport({ api: 'http://api.invalid/api/chat', fetch }, (id) =>
    holdsFinishedAnswer(messages, id),
  );
  return transport;
}

async function chunksOf(stream: ReadableStream<{ type: string }> | null) {
  if (!stream) return null;
  const types: string[] = [];
  for await (const chunk of stream) types.push(chunk.type);
  return types;
}

const question: ChatMessage = { id: 'q-2', role: 'user', parts: [{ type: 'text', text: 'Hi' }] };

describe('ConversationTransport.reconnectToStream', () => {
  it('skips the replay of an answer the page holds finished (stored, or streamed to its end here)', async () => {
    for (const metadata of [{ createdAt: '2026-12-05T08:00:00Z' }, { stopReason: 'end_turn' }]) {
      const answer: ChatMessage = { id: 'a-2', role: 'assistant', parts: [], metadata };
      const transport = transportFor([question, answer]);
      await expect(transport.reconnectToStream({ chatId: 'c' })).resolves.toBeNull();
    }
  });

  it('passes a replay through whole when the page lacks the answer or holds it unfinished', async () => {
    const partial: ChatMessage = { id: 'a-2', role: 'assistant', parts: [], metadata: { sessionId: 'c' } };
    const other: ChatMessage = {
      id: 'a-1',
      role: 'assistant',
      parts: [],
      metadata: { stopReason: 'end_turn' },
    };
    for (const messages of [[question], [question, partial], [other, question]]) {
      const transport = transportFor(messages);
      await expect(chunksOf(await transport.reconnectToStream({ chatId: 'c' }))).resolves.toEqual(
        REPLAY.map((chunk) => chunk.type),
      );
    }
  });
});
