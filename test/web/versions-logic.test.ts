import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../web/src/api.ts';
import { parentIdFor } from '../../web/src/branching.ts';
import { conversationJson, conversationMarkdown } from '../../web/src/exports.ts';

const ui = (id: string, role: 'user' | 'assistant', metadata?: ChatMessage['metadata']): ChatMessage => ({
  id,
  role,
  parts: [{ type: 'text', text: id }],
  ...(metadata ? { metadata } : {}),
});

describe('the page among versions', () => {
  it('names the stored message a new one follows, skipping a failed answer; null at the start', () => {
    expect(parentIdFor([ui('q1', 'user')])).toBeNull();
    expect(
      parentIdFor([ui('q1', 'user', { messageId: 'stored-q1' }), ui('a1', 'assistant'), ui('q2', 'user')]),
    ).toBe('a1');
    expect(
      parentIdFor([
        ui('q1', 'user', { messageId: 'stored-q1' }),
        ui('a1', 'assistant', { errorCode: 'model_error' }),
        ui('q2', 'user'),
      ]),
    ).toBe('stored-q1');
  });

  it('exports which version a message is and the rating of an answer, in Markdown and JSON', () => {
    const messages = [
      {
        id: 'q2',
        role: 'user' as const,
        text: 'What is an HSA?',
        created_at: '2026-12-04T10:00:00Z',
        versions: ['q1', 'q2'],
      },
      {
        id: 'a2',
        role: 'assistant' as const,
        text: 'A health savings account.',
        created_at: '2026-12-04T10:00:02Z',
        feedback: { rating: 'down' as const, reason: 'Too short' },
      },
    ];
    const markdown = conversationMarkdown('HSA', messages);
    expect(markdown).toContain('What is an HSA?\n\n_Version 2 of 2._\n');
    expect(markdown).toContain('A health savings account.\n\nRated not helpful: “Too short”\n');
    const json = JSON.parse(conversationJson({ id: 's1', title: 'HSA' }, messages, new Date(0)));
    expect(json.messages[1].feedback).toEqual({ rating: 'down', reason: 'Too short' });
    expect(json.messages[0].versions).toEqual(['q1', 'q2']);
  });
});
