import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../../functions/core/messages.ts';
import { buildSystemPrompt, toConverseMessages } from '../../../functions/core/prompt.ts';

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

  it('leaves out an answer a guardrail replaced, so the model never sees it as said', () => {
    const blocked = {
      ...msg('assistant', 'Sorry, I cannot help with that.'),
      stopReason: 'guardrail_intervened',
    };
    expect(toConverseMessages([msg('user', 'q1'), blocked], 'q2')).toEqual([
      { role: 'user', content: 'q1\n\nq2' },
    ]);
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
