import { describe, expect, it } from 'vitest';
import { RequestRejected } from '../../../functions/core/errors.ts';
import { chatRequestSchema, parseJsonBody } from '../../../functions/core/request.ts';

describe('parseJsonBody with the chat request schema', () => {
  const schema = chatRequestSchema(10);
  const fieldOf = (body: string) => {
    try {
      parseJsonBody(body, schema);
    } catch (error) {
      return error instanceof RequestRejected ? [error.kind, error.details?.field ?? error.code] : error;
    }
    return 'accepted';
  };
  it.each([
    ['not json', ['invalid', 'invalid_json']],
    ['[]', ['invalid', 'body']],
    ['{}', ['invalid', 'message']],
    ['{"message":""}', ['invalid', 'message']],
    ['{"message":"   "}', ['invalid', 'message']],
    ['{"message":"12345678901"}', ['invalid', 'message']],
    ['{"message":"hi","session_id":"no pe"}', ['invalid', 'session_id']],
    [`{"message":"hi","session_id":"${'a'.repeat(129)}"}`, ['invalid', 'session_id']],
    ['{"message":"hi","message_id":"a/b"}', ['invalid', 'message_id']],
    ['{"message":"hi","session_id":"dGhpcyBpcyBvcGFx","message_id":"m_1-x"}', 'accepted'],
    ['{"message":"hi","use_rag":"yes"}', ['invalid', 'use_rag']],
    ['{"message":"hi","user_id":"x"}', ['invalid', 'user_id']],
    ['{"message":"hi","session_id":"01900000-0000-7000-8000-000000000002","use_rag":false}', 'accepted'],
  ])('%s → %j', (body, expected) => {
    expect(fieldOf(body)).toEqual(expected);
  });
});
