import type { Context, LambdaFunctionURLEvent } from 'aws-lambda';
import { v7 as uuidv7 } from 'uuid';
import { createStreamRuntime } from '../functions/chat-stream/stream-runtime.ts';
import { encodeEvent, SSE_HEADERS } from '../functions/chat-stream/wire/native-sse.ts';
import type { ChatMessage } from '../functions/core/messages.ts';
import { buildSystemPrompt, toConverseMessages } from '../functions/core/prompt.ts';
import { parseJsonBody } from '../functions/core/request.ts';
import type { LambdaResponseStream } from '../local/lambda-runtime/response-stream.ts';

/** What both comparison handlers share: the stream function's own composition root and the Lambda runtime. */
function comparisonParts() {
  const runtime = createStreamRuntime();
  const { awslambda } = globalThis as unknown as {
    awslambda: {
      HttpResponseStream: { from: (s: LambdaResponseStream, p: object) => LambdaResponseStream };
      streamifyResponse: <T>(h: T) => T;
    };
  };
  return { ...runtime, config: runtime.config, schema: runtime.requestSchema, awslambda };
}

/**
 * The seed's "before" design, for comparison only: profile, history, RAG, session write and message
 * write one after another, then the stream. Same adapters and emulators as the real handler, no cache.
 */
export function createBaselineHandler() {
  const { config, model, auth, schema, awslambda, store, retriever } = comparisonParts();
  const { HttpResponseStream } = awslambda;
  const handler = async (
    event: LambdaFunctionURLEvent,
    responseStream: LambdaResponseStream,
    _context: Context,
  ) => {
    const started = performance.now();
    const userId = await auth.userIdFrom(event.headers.authorization);
    const request = parseJsonBody(event.body ?? '', schema);
    const sessionId = request.session_id ?? uuidv7();
    const profile = await store.getProfile(userId);
    const history = await store.getRecentMessages(userId, sessionId, config.HISTORY_LIMIT);
    const passages =
      request.use_rag !== false && retriever
        ? await retriever.retrieve(request.message, AbortSignal.timeout(10_000))
        : [];
    const userMessage: ChatMessage = {
      messageId: uuidv7(),
      sessionId,
      userId,
      role: 'user',
      content: request.message,
      createdAt: new Date().toISOString(),
    };
    await store.save(userMessage);
    const out = HttpResponseStream.from(responseStream, { statusCode: 200, headers: { ...SSE_HEADERS } });
    out.write(encodeEvent({ type: 'session_id', session_id: sessionId, message_id: '' }));
    const firstByte = performance.now() - started;
    if (passages.length > 0)
      out.write(encodeEvent({ type: 'sources', sources: passages.map(({ text: _t, ...s }) => s) }));
    let answer = '';
    let firstToken = 0;
    let usage = { input_tokens: 0, output_tokens: 0 };
    for await (const e of model.stream({
      system: buildSystemPrompt(profile, passages),
      messages: toConverseMessages(history, request.message),
      signal: AbortSignal.timeout(60_000),
    })) {
      if (e.type === 'text') {
        if (!answer) firstToken = performance.now() - started;
        answer += e.text;
        out.write(encodeEvent({ type: 'token', text: e.text }));
      } else if (e.type === 'usage') usage = { input_tokens: e.inputTokens, output_tokens: e.outputTokens };
    }
    const assistant: ChatMessage = {
      ...userMessage,
      messageId: uuidv7(),
      role: 'assistant',
      content: answer,
      createdAt: new Date().toISOString(),
    };
    await store.save(assistant);
    const total = performance.now() - started;
    out.write(
      encodeEvent({
        type: 'done',
        message_id: assistant.messageId,
        stop_reason: 'end_turn',
        usage,
        timings: {
          first_byte_ms: firstByte,
          context_ms: 0,
          rag_ms: 0,
          model_first_token_ms: firstToken,
          model_latency_ms: 0,
          total_ms: total,
        },
        cache: { profile: 'miss', history: 'miss', rag: passages.length ? 'miss' : 'skipped' },
      }),
    );
    out.end();
  };
  return awslambda.streamifyResponse(handler);
}

/**
 * The limit: what any design pays at least. Verify the token, write session_id, call the model with
 * the message alone, stream. No context, no cache, no writes; the same adapters and emulators.
 */
export function createLimitHandler() {
  const { model, auth, schema, awslambda } = comparisonParts();
  return awslambda.streamifyResponse(
    async (event: LambdaFunctionURLEvent, responseStream: LambdaResponseStream) => {
      const started = performance.now();
      await auth.userIdFrom(event.headers.authorization);
      const request = parseJsonBody(event.body ?? '', schema);
      const out = awslambda.HttpResponseStream.from(responseStream, {
        statusCode: 200,
        headers: { ...SSE_HEADERS },
      });
      out.write(
        encodeEvent({ type: 'session_id', session_id: request.session_id ?? uuidv7(), message_id: '' }),
      );
      let firstToken = 0;
      const messages = [{ role: 'user' as const, content: request.message }];
      for await (const e of model.stream({ system: '', messages, signal: AbortSignal.timeout(60_000) })) {
        if (e.type !== 'text') continue;
        if (!firstToken) firstToken = performance.now() - started;
        out.write(encodeEvent({ type: 'token', text: e.text }));
      }
      out.write(
        encodeEvent({
          type: 'done',
          message_id: uuidv7(),
          stop_reason: 'end_turn',
          usage: { input_tokens: 0, output_tokens: 0 },
          timings: {
            first_byte_ms: 0,
            context_ms: 0,
            rag_ms: 0,
            model_first_token_ms: firstToken,
            model_latency_ms: 0,
            total_ms: performance.now() - started,
          },
          cache: { profile: 'skipped', history: 'skipped', rag: 'skipped' },
        }),
      );
      out.end();
    },
  );
}
