import { PassThrough } from 'node:stream';
import { readUIMessageStream, type UIMessageChunk } from 'ai';
import { describe, expect, it } from 'vitest';
import {
  sourcePart,
  toUiMessageChunks,
  UI_STREAM_START,
  type UiStreamState,
} from '../../../functions/chat-stream/wire/ai-sdk.ts';
import { encodeEvent, toNativeEvent } from '../../../functions/chat-stream/wire/native-sse.ts';
import { type CompletionStream, toCompletionChunks } from '../../../functions/chat-stream/wire/openai.ts';
import { encodeEvents, SseWriter } from '../../../functions/chat-stream/wire/sse-writer.ts';
import type { TurnEvent } from '../../../functions/core/turn-events.ts';

const usage = { input_tokens: 12, output_tokens: 2 };
const timings = {
  first_byte_ms: 1,
  context_ms: 2,
  rag_ms: 3,
  model_first_token_ms: 4,
  model_latency_ms: 5,
  total_ms: 6,
};
const cache = { profile: 'hit', history: 'miss', rag: 'skipped' } as const;
const TURN: TurnEvent[] = [
  { type: 'session_id', session_id: 's1', message_id: 'm1' },
  { type: 'sources', sources: [{ id: 'd#0', title: 'Doc', uri: 's3://kb/doc.md', score: 1, excerpt: 'e' }] },
  { type: 'token', text: 'Hel' },
  { type: 'token', text: 'lo' },
  { type: 'done', message_id: 'm1', stop_reason: 'end_turn', usage, timings, cache },
];

/** Runs a mapper over a turn, threading its state, and returns every chunk in order. */
function mapAll<S, C>(events: TurnEvent[], start: S, map: (e: TurnEvent, s: S) => { chunks: C[]; state: S }) {
  let state = start;
  return events.flatMap((event) => {
    const mapped = map(event, state);
    state = mapped.state;
    return mapped.chunks;
  });
}
const ui = (events: TurnEvent[], start: UiStreamState = UI_STREAM_START) =>
  mapAll(events, start, toUiMessageChunks);

describe('SseWriter: the one SSE framing of every wire format', () => {
  const collect = (out: PassThrough) => {
    const parts: string[] = [];
    out.on('data', (chunk: Buffer) => parts.push(chunk.toString()));
    return parts;
  };

  it('writes one data event per item, the id on the first, padded until told the first token went out', () => {
    const out = new PassThrough();
    const parts = collect(out);
    const sse = new SseWriter(out, 4);
    expect(sse.write([{ a: 1 }, 'raw'], 7)).toBe(true);
    sse.stopPadding();
    sse.write([{ b: 2 }]);
    sse.end('[DONE]');
    expect(parts).toEqual([
      `:    \nid: 7\ndata: {"a":1}\n\ndata: raw\n\n`,
      'data: {"b":2}\n\n',
      'data: [DONE]\n\n',
    ]);
    expect(out.writableEnded).toBe(true);
  });

  it('escapes U+2028, U+2029 and U+0085 in every data line, and the JSON still decodes to the same text', () => {
    const text = 'a\u2028b\u2029c\u0085d';
    const encoded = encodeEvents([{ text }]);
    expect(encoded).toBe('data: {"text":"a\\u2028b\\u2029c\\u0085d"}\n\n');
    expect(encoded).not.toMatch(/[\u2028\u2029\u0085]/);
    expect(JSON.parse(encoded.slice('data: '.length).trim())).toEqual({ text });
  });

  it('refuses to write once the client is gone, and ends without the marker', () => {
    const out = new PassThrough();
    const parts = collect(out);
    const sse = new SseWriter(out, 0);
    out.destroy();
    expect(sse.isOpen).toBe(false);
    expect(sse.write([{ a: 1 }])).toBe(false);
    sse.end('[DONE]');
    expect(parts).toEqual([]);
  });
});

describe('native SSE events', () => {
  it('writes one SSE data event, optionally behind a comment of padding', () => {
    expect(encodeEvent({ type: 'token', text: 'a\nb' })).toBe('data: {"type":"token","text":"a\\nb"}\n\n');
    const padded = encodeEvent({ type: 'session_id', session_id: 's', message_id: 'm' }, undefined, 100);
    expect(padded.startsWith(`:${' '.repeat(100)}\n`)).toBe(true);
    expect(padded.endsWith('data: {"type":"session_id","session_id":"s"}\n\n')).toBe(true);
  });

  it('puts the event id on its own line before the data, so a client can resume after it', () => {
    expect(encodeEvent({ type: 'token', text: 'x' }, 7)).toBe('id: 7\ndata: {"type":"token","text":"x"}\n\n');
  });

  it('never sends the answer id the native protocol does not have', () => {
    expect(toNativeEvent({ type: 'session_id', session_id: 's', message_id: 'm' })).toEqual({
      type: 'session_id',
      session_id: 's',
    });
  });
});

describe('AI SDK UI message chunks (typed UIMessageChunk)', () => {
  it('maps a turn in the order useChat parses: start, sources, one text-start, deltas, text-end, finish', () => {
    expect(ui(TURN)).toEqual([
      { type: 'start', messageId: 'm1', messageMetadata: { sessionId: 's1' } },
      { type: 'start-step' },
      {
        type: 'source-document',
        sourceId: 'd#0',
        mediaType: 'text/markdown',
        title: 'Doc',
        filename: 'doc.md',
        providerMetadata: { knowledgeBase: { score: 1, excerpt: 'e' } },
      },
      { type: 'text-start', id: 'text' },
      { type: 'text-delta', id: 'text', delta: 'Hel' },
      { type: 'text-delta', id: 'text', delta: 'lo' },
      { type: 'text-end', id: 'text' },
      { type: 'finish-step' },
      {
        type: 'finish',
        finishReason: 'stop',
        messageMetadata: { sessionId: 's1', stopReason: 'end_turn', usage, timings, cache },
      },
    ]);
  });

  it('links a source with a url (SOURCE_BASE_URL) as a source-url part, whatever its uri', () => {
    const part = sourcePart({
      id: 'd#0',
      title: 'Doc',
      uri: 's3://kb/doc.md',
      score: 0.9,
      excerpt: 'e',
      url: 'https://kb.test/doc.md',
    });
    expect(part).toEqual({
      type: 'source-url',
      sourceId: 'd#0',
      url: 'https://kb.test/doc.md',
      title: 'Doc',
      providerMetadata: { knowledgeBase: { score: 0.9, excerpt: 'e' } },
    });
  });

  it("carries each source's relevance score to the AI SDK's parsed message, streamed and read back alike", async () => {
    const sources = [
      { id: 'u#0', title: 'Web', uri: 'https://example.com/roth', score: 0.82, excerpt: 'e' },
      { id: 'd#1', title: 'Doc', uri: 's3://kb/hsa.md', score: 0.12, excerpt: 'e' },
    ];
    const chunks = ui([TURN[0] as TurnEvent, { type: 'sources', sources }, ...TURN.slice(2)]);
    // The AI SDK's own parser (what useChat runs) keeps the metadata the page's relevance floor reads.
    const stream = new ReadableStream<UIMessageChunk>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    let parsed: Array<{ type: string; providerMetadata?: unknown }> = [];
    for await (const message of readUIMessageStream({ stream })) parsed = message.parts;
    const scores = parsed
      .filter((p) => p.type.startsWith('source-'))
      .map((p) => [p.type, (p.providerMetadata as { knowledgeBase: { score: number } }).knowledgeBase.score]);
    expect(scores).toEqual([
      ['source-url', 0.82],
      ['source-document', 0.12],
    ]);
    // `?format=ai-sdk` maps stored sources through the same part: a reopened answer hides the same ones.
    expect(sources.map(sourcePart).map((p) => p.providerMetadata)).toEqual([
      { knowledgeBase: { score: 0.82, excerpt: 'e' } },
      { knowledgeBase: { score: 0.12, excerpt: 'e' } },
    ]);
  });

  it('marks a stopped answer with abort before finish; an error closes the text and finishes as error', () => {
    const stopped = ui([
      TURN[0] as TurnEvent,
      { type: 'token', text: 'a' },
      { type: 'done', message_id: 'm1', stop_reason: 'stopped', usage, timings, cache },
    ]);
    expect(stopped.slice(-3).map((c) => c.type)).toEqual(['finish-step', 'abort', 'finish']);
    expect(stopped.at(-1)).toMatchObject({ finishReason: 'other' });
    const failed = ui([
      TURN[0] as TurnEvent,
      { type: 'token', text: 'a' },
      { type: 'error', code: 'timeout', message: 'late' },
    ]);
    expect(failed.slice(-3)).toEqual([
      { type: 'text-end', id: 'text' },
      { type: 'error', errorText: 'late' },
      { type: 'finish', finishReason: 'error', messageMetadata: { sessionId: 's1', errorCode: 'timeout' } },
    ]);
  });

  it('a resumed stream that starts mid-answer never closes a text part it did not open', () => {
    const resumed = ui([
      { type: 'done', message_id: 'm1', stop_reason: 'max_tokens', usage, timings, cache },
    ]);
    expect(resumed.map((c) => c.type)).toEqual(['finish-step', 'finish']);
    expect(resumed.at(-1)).toMatchObject({ finishReason: 'length' });
  });
});

describe('OpenAI chat.completion.chunk mapping (typed ChatCompletionChunk)', () => {
  const stream = (includeUsage: boolean): CompletionStream => ({
    id: 'chatcmpl',
    created: 1_700_000_000,
    model: 'm',
    includeUsage,
  });
  const openAi = (events: TurnEvent[], includeUsage: boolean) =>
    mapAll(events, stream(includeUsage), (event, s) => {
      const mapped = toCompletionChunks(event, s);
      return { chunks: mapped.chunks, state: mapped.stream };
    });

  it('names every chunk after the answer, sends role then content deltas, and ends with the finish reason', () => {
    const chunks = openAi(TURN, false);
    expect(chunks).toEqual([
      {
        id: 'chatcmpl-m1',
        object: 'chat.completion.chunk',
        created: 1_700_000_000,
        model: 'm',
        choices: [
          { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null },
        ],
      },
      expect.objectContaining({ choices: [expect.objectContaining({ delta: { content: 'Hel' } })] }),
      expect.objectContaining({ choices: [expect.objectContaining({ delta: { content: 'lo' } })] }),
      expect.objectContaining({ choices: [expect.objectContaining({ delta: {}, finish_reason: 'stop' })] }),
    ]);
  });

  it('adds a usage chunk with no choices when asked for, and null usage on the others', () => {
    const chunks = openAi(TURN, true);
    expect(chunks.at(-2)).toMatchObject({ usage: null });
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 12, completion_tokens: 2, total_tokens: 14 },
    });
  });

  it("sends a failure as OpenAI's error body, with the type its SDK branches on", () => {
    const [failure] = openAi([{ type: 'error', code: 'throttled', message: 'busy' }], false);
    expect(failure).toEqual({
      error: { message: 'busy', type: 'rate_limit_error', param: null, code: 'throttled' },
    });
  });
});
