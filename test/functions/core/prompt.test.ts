import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../../functions/core/messages.ts';
import {
  buildPrompt,
  buildSystemPrompt,
  stableHistory,
  toConverseMessages,
} from '../../../functions/core/prompt.ts';

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

/** A conversation of `turns` question-and-answer pairs with UUIDv7-shaped, distinct ids. */
function conversation(turns: number, offset = 0): ChatMessage[] {
  return Array.from({ length: turns * 2 }, (_, i) => ({
    ...msg(i % 2 === 0 ? 'user' : 'assistant', `${i % 2 === 0 ? 'q' : 'a'}${Math.floor(i / 2) + offset}`),
    messageId: `01900000-0000-7000-8000-${String(i + offset * 2).padStart(12, '0')}`,
  }));
}

describe('buildPrompt: the order that lets a prompt cache pay', () => {
  const profile = { userId: 'u', name: 'Alex', preferences: { level: 'beginner' } };
  const passage = { id: '1', title: 'Roth', uri: 's3://x', score: 1, excerpt: '', text: 'Roth text' };

  it('keeps the passages out of the system prompt: it is the same for every question of a user', () => {
    const a = buildPrompt({ profile, passages: [passage], history: [], question: 'What is a Roth IRA?' });
    const b = buildPrompt({ profile, passages: [], history: [], question: 'And a 401(k)?' });
    expect(a.system).toBe(b.system);
    expect(a.system).toContain('Alex');
    expect(a.system).not.toContain('Roth text');
  });

  it('puts the passages in the last user turn, before the question, after the history', () => {
    const { messages } = buildPrompt({
      profile,
      passages: [passage],
      history: [msg('user', 'earlier'), msg('assistant', 'answer')],
      question: 'What is a Roth IRA?',
    });
    expect(messages.slice(0, 2)).toEqual([
      { role: 'user', content: 'earlier' },
      { role: 'assistant', content: 'answer' },
    ]);
    expect(messages[2]?.content).toBe(
      '<sources>\n<source id="1" title="Roth">\nRoth text\n</source>\n</sources>\n\nWhat is a Roth IRA?',
    );
  });

  it("repeats this turn's prompt, up to its question, as the start of the next turn's", () => {
    const history = conversation(3);
    const now = buildPrompt({ profile, passages: [passage], history, question: 'q3', historyLimit: 10 });
    const next = buildPrompt({
      profile,
      passages: [],
      history: [...history, ...conversation(1, 3)],
      question: 'q4',
      historyLimit: 10,
    });
    expect(next.system).toBe(now.system);
    expect(next.messages.slice(0, now.messages.length - 1)).toEqual(now.messages.slice(0, -1));
  });
});

describe('stableHistory', () => {
  it('keeps a window that is not full whole (its start never moves)', () => {
    const history = conversation(10);
    expect(stableHistory(history, 40)).toBe(history);
    expect(stableHistory(history, undefined)).toBe(history);
  });

  it('keeps small windows whole: one turn of context is worth more than a cache hit there', () => {
    const history = conversation(5);
    expect(stableHistory(history, 10)).toBe(history);
  });

  it('starts a full, sliding window at an anchor user message, the same one for several turns', () => {
    const limit = 40;
    const all = conversation(60);
    const starts: string[] = [];
    for (let turn = 20; turn < 60; turn++) {
      const window = all.slice(turn * 2 - limit, turn * 2);
      const kept = stableHistory(window, limit);
      expect(kept[0]?.role).toBe('user');
      expect(kept.length).toBeGreaterThanOrEqual(limit / 2);
      expect(window.slice(window.length - kept.length)).toEqual(kept);
      starts.push(kept[0]?.messageId ?? '');
    }
    // The start moves in steps: most turns repeat the previous turn's first message (a cache hit).
    const repeats = starts.filter((id, i) => i > 0 && id === starts[i - 1]).length;
    expect(repeats).toBeGreaterThan(starts.length / 2);
  });
});
