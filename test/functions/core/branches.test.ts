import { describe, expect, it } from 'vitest';
import { activeBranch, placeQuestion, regenerationOf, versionsOn } from '../../../functions/core/branches.ts';
import type { ChatMessage } from '../../../functions/core/messages.ts';

const id = (n: number) => `01900000-0000-7000-8000-${String(n).padStart(12, '0')}`;
const msg = (n: number, role: 'user' | 'assistant', extra: Partial<ChatMessage> = {}): ChatMessage => ({
  messageId: id(n),
  sessionId: 's',
  userId: 'u',
  role,
  content: `m${n}`,
  createdAt: '2026-12-04T00:00:00Z',
  ...extra,
});
const ids = (messages: ChatMessage[]) => messages.map((m) => m.content);

describe('versions as a tree', () => {
  // q1 → a2 → q3 → a4, then q3 edited (q5 beside q3) → a6, then a6 regenerated (a7 beside a6).
  const tree = [
    msg(1, 'user', { parentId: null, clientMessageId: 'c1' }),
    msg(2, 'assistant', { parentId: id(1) }),
    msg(3, 'user', { parentId: id(2), clientMessageId: 'c3' }),
    msg(4, 'assistant', { parentId: id(3) }),
    msg(5, 'user', { parentId: id(2), clientMessageId: 'c3' }),
    msg(6, 'assistant', { parentId: id(5) }),
    msg(7, 'assistant', { parentId: id(5), replaces: id(6) }),
  ];

  it('reads the active branch (the newest message) and the branch through an older version', () => {
    expect(ids(activeBranch(tree))).toEqual(['m1', 'm2', 'm5', 'm7']);
    expect(ids(activeBranch(tree, id(3)))).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(ids(activeBranch(tree, id(6)))).toEqual(['m1', 'm2', 'm5', 'm6']);
    expect(ids(activeBranch(tree, 'unknown'))).toEqual(['m1', 'm2', 'm5', 'm7']);
  });

  it('lists the versions of each message on a branch, oldest first', () => {
    const versions = versionsOn(tree, activeBranch(tree));
    expect(versions.get(id(5))).toEqual([id(3), id(5)]);
    expect(versions.get(id(7))).toEqual([id(6), id(7)]);
    expect(versions.has(id(1))).toBe(false);
  });

  it('places a question after its named parent, beside an edited question, or after the newest message', () => {
    expect(placeQuestion(tree, { parentRef: id(4) })).toMatchObject({ parentId: id(4) });
    expect(ids(placeQuestion(tree, { parentRef: id(4) }).history)).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(placeQuestion(tree, { parentRef: null })).toEqual({ parentId: null, history: [] });
    expect(placeQuestion(tree, { clientMessageId: 'c3' })).toMatchObject({ parentId: id(2) });
    expect(placeQuestion(tree, { clientMessageId: 'new' })).toMatchObject({ parentId: id(7) });
    // A client's id for a question resolves to the newest question with it.
    expect(placeQuestion(tree, { parentRef: 'c3' })).toMatchObject({ parentId: id(5) });
  });

  it('regenerates the question of the named answer, with only its branch before it', () => {
    const again = regenerationOf(tree, id(4));
    expect(again?.question.content).toBe('m3');
    expect(ids(again?.before ?? [])).toEqual(['m1', 'm2']);
    expect(again?.replaces).toBe(id(4));
    expect(regenerationOf(tree, undefined)?.question.content).toBe('m5');
    expect(regenerationOf([], undefined)).toBeUndefined();
  });

  it('reads messages stored before versions as a line, a regenerated one beside the answer it replaced', () => {
    const legacy = [
      msg(1, 'user'),
      msg(2, 'assistant'),
      msg(3, 'assistant', { replaces: id(2) }),
      msg(4, 'user'),
    ];
    expect(ids(activeBranch(legacy))).toEqual(['m1', 'm3', 'm4']);
    expect(versionsOn(legacy, activeBranch(legacy)).get(id(3))).toEqual([id(2), id(3)]);
  });
});
