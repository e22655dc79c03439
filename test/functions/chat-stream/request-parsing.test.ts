import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as z from 'zod/mini';
import { rejectionResponse } from '../../../functions/chat-stream/http-errors.ts';
import { readJsonBody } from '../../../functions/chat-stream/invocation.ts';
import { createRouter } from '../../../functions/chat-stream/router.ts';
import { aiSdkRequestSchema, toTurnRequest } from '../../../functions/chat-stream/wire/ai-sdk.ts';
import { readOpenAiRequest } from '../../../functions/chat-stream/wire/openai-request.ts';
import { decodeCursor } from '../../../functions/core/conversations.ts';
import { RequestRejected } from '../../../functions/core/errors.ts';
import { chatRequestSchema, parseJsonBody } from '../../../functions/core/request.ts';

const POLICY = { allowed: ['m'], maxTokens: 100 };

/** A parser may accept or refuse; refusing is a RequestRejected answered with a 4xx, never anything else. */
function refusesCleanly(parse: () => unknown): boolean {
  try {
    parse();
    return true;
  } catch (error) {
    if (!(error instanceof RequestRejected)) throw error;
    const { statusCode } = rejectionResponse(error, 'api');
    return statusCode >= 400 && statusCode < 500;
  }
}

const answer = async () => ({ statusCode: 200, headers: {}, body: '' });
const matchRoute = createRouter({
  turns: {
    nativeTurn: answer,
    aiSdkTurn: answer,
    openAiTurn: answer,
    resumeNative: answer,
    resumeAiSdk: answer,
    stop: answer,
  },
  conversations: {
    listSessions: answer,
    getSession: answer,
    listMessages: answer,
    renameSession: answer,
    deleteSession: answer,
    eraseUser: answer,
    putFeedback: answer,
    deleteFeedback: answer,
  },
  account: { usage: answer },
  models: { listModels: answer, retrieveModel: answer },
});

const jsonText = fc.oneof(
  fc.json(),
  fc.string(),
  fc.jsonValue().map((v) => JSON.stringify({ message: v, session_id: v })),
  fc
    .record({
      id: fc.oneof(fc.string(), fc.integer()),
      messages: fc.array(
        fc.record({
          id: fc.string(),
          role: fc.string(),
          parts: fc.array(fc.dictionary(fc.string(), fc.jsonValue())),
        }),
      ),
      trigger: fc.string(),
    })
    .map((v) => JSON.stringify(v)),
);

describe('request parsing, fuzzed (fast-check): any input is accepted or refused with a 4xx, never a crash', () => {
  it('native chat bodies', () => {
    const schema = chatRequestSchema(8000);
    fc.assert(
      fc.property(jsonText, (body) => refusesCleanly(() => parseJsonBody(body, schema))),
      { numRuns: 500 },
    );
  });

  it('AI SDK bodies', () => {
    fc.assert(
      fc.property(jsonText, (body) =>
        refusesCleanly(() => toTurnRequest(parseJsonBody(body, aiSdkRequestSchema), 8000, POLICY)),
      ),
      { numRuns: 500 },
    );
  });

  it('OpenAI bodies and headers', () => {
    fc.assert(
      fc.property(
        jsonText,
        fc.dictionary(fc.constantFrom('x-session-id', 'idempotency-key'), fc.string()),
        (body, headers) =>
          refusesCleanly(() =>
            readOpenAiRequest(parseJsonBody(body, z.unknown()), headers, {
              policy: POLICY,
              maxMessageChars: 8000,
            }),
          ),
      ),
      { numRuns: 500 },
    );
  });

  it('reads field names as data: __proto__, constructor and toString are unknown fields, not Object.prototype', () => {
    const ask = (body: string) =>
      readOpenAiRequest(parseJsonBody(body, z.unknown()), {}, { policy: POLICY, maxMessageChars: 8000 });
    const messages = '"messages":[{"role":"user","content":"Hi"}]';
    for (const field of ['__proto__', 'constructor', 'toString']) {
      expect(() => ask(`{"model":"m",${messages},"${field}":[]}`)).toThrow(
        expect.objectContaining({ code: 'unknown_parameter', message: `Unknown parameter: ${field}.` }),
      );
      expect(() => ask(`{"model":"m","messages":[{"role":"user","content":"Hi","${field}":1}]}`)).toThrow(
        expect.objectContaining({ message: `messages[0].${field}: unknown field.` }),
      );
    }
  });

  it('routes, methods and cursors', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS', 'HEAD'),
        fc.oneof(
          fc.webPath(),
          fc.string().map((s) => `/sessions/${s}`),
          fc.string().map((s) => `/api/chat/${s}/stop`),
        ),
        fc.string(),
        (method, path, cursor) =>
          refusesCleanly(() => matchRoute(method, path)) &&
          refusesCleanly(() => decodeCursor(cursor, ['before'])),
      ),
      { numRuns: 1000 },
    );
  });

  it('raw bodies: media type and size', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.boolean(), (contentType, body, base64) =>
        refusesCleanly(() =>
          readJsonBody(
            {
              headers: { 'content-type': contentType },
              body,
              isBase64Encoded: base64,
              requestContext: { http: { method: 'POST' } },
            } as never,
            64,
          ),
        ),
      ),
      { numRuns: 500 },
    );
  });

  it('can fail: a parser that throws a plain error is caught by the property', () => {
    expect(() =>
      fc.assert(
        fc.property(fc.string(), (s) =>
          refusesCleanly(() => {
            if (s.length > 3) throw new TypeError('crash');
          }),
        ),
      ),
    ).toThrow(/Property failed/);
  });
});
