import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../../functions/core/messages.ts';
import { buildSystemPrompt, toConverseMessages } from '../../../functions/core/prompt.ts';
import { encodeEvent } from '../../../functions/core/protocol.ts';
import { chatRequestSchema, HttpError, parseChatRequest } from '../../../functions/core/request.ts';

const msg = (role: 'user' | 'assistant', content: string): ChatMessage => ({
  messageId: '01900000-0000-7000-8000-000000000001',
  sessionId: '01900000-0000-7000-8000-000000000002',
  userId: 'u',
  role,
  content,
  createdAt: '2026-11-25T00:00:00Z',
});

describe('toConverseMessages', () => {
  it('starts with a user turn, alternates roles and ends with the new message', () => {
    const out = toConverseMessages(
      [
        msg('assistant', 'orphan'),
        msg('user', 'a'),
        msg('user', 'b'),
        msg('assistant', 'c'),
        msg('assistant', ' '),
      ],
      'new',
    );
    expect(out).toEqual([
      { role: 'user', content: 'a\n\nb' },
      { role: 'assistant', content: 'c' },
      { role: 'user', content: 'new' },
    ]);
  });

  it('merges a dangling user turn (a failed answer) with the new message', () => {
    expect(toConverseMessages([msg('user', 'q1')], 'q2')).toEqual([{ role: 'user', content: 'q1\n\nq2' }]);
  });
});

describe('buildSystemPrompt', () => {
  it('includes the profile and each passage', () => {
    const prompt = buildSystemPrompt({ userId: 'u', name: 'Alex', preferences: { level: 'beginner' } }, [
      { id: '1', title: 'Roth', uri: 's3://x', score: 1, excerpt: '', text: 'Roth text' },
    ]);
    expect(prompt).toContain('Alex');
    expect(prompt).toContain('level: beginner');
    expect(prompt).toContain('<source id="1" title="Roth">\nRoth text\n</source>');
  });
});

describe('encodeEvent', () => {
  it('writes one SSE data event, optionally behind a comment of padding', () => {
    expect(encodeEvent({ type: 'token', text: 'a\nb' })).toBe('data: {"type":"token","text":"a\\nb"}\n\n');
    const padded = encodeEvent({ type: 'session_id', session_id: 's' }, 100);
    expect(padded.startsWith(`:${' '.repeat(100)}\n`)).toBe(true);
    expect(padded.endsWith('data: {"type":"session_id","session_id":"s"}\n\n')).toBe(true);
  });
});

describe('parseChatRequest', () => {
  const schema = chatRequestSchema(10);
  const fieldOf = (body: string) => {
    try {
      parseChatRequest(body, schema);
    } catch (error) {
      return error instanceof HttpError ? [error.status, error.details?.field ?? error.code] : error;
    }
    return 'accepted';
  };
  it.each([
    ['not json', [400, 'invalid_json']],
    ['[]', [400, 'body']],
    ['{}', [400, 'message']],
    ['{"message":""}', [400, 'message']],
    ['{"message":"   "}', [400, 'message']],
    ['{"message":"12345678901"}', [400, 'message']],
    ['{"message":"hi","session_id":"nope"}', [400, 'session_id']],
    ['{"message":"hi","use_rag":"yes"}', [400, 'use_rag']],
    ['{"message":"hi","user_id":"x"}', [400, 'user_id']],
    ['{"message":"hi","session_id":"01900000-0000-7000-8000-000000000002","use_rag":false}', 'accepted'],
  ])('%s → %j', (body, expected) => {
    expect(fieldOf(body)).toEqual(expected);
  });
});
