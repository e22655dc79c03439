import { describe, expect, it } from 'vitest';
import type { SessionSummary } from '../../web/src/api.ts';
import { appendPage, mergeFirstPage } from '../../web/src/session-list.ts';

const row = (id: string, updated_at: string): SessionSummary => ({
  id,
  title: id,
  title_source: 'user',
  created_at: updated_at,
  updated_at,
  message_count: 2,
});

describe('the paged conversation list', () => {
  const older = [row('c', '2026-11-03'), row('d', '2026-11-02'), row('e', '2026-11-01')];

  it('a refresh replaces the list when no older page is shown', () => {
    const first = [row('a', '2026-12-04'), row('b', '2026-12-03')];
    expect(mergeFirstPage([row('x', '2026-12-01')], first, false)).toEqual(first);
  });

  it('a refresh keeps the older pages shown, each row once, dropping rows newer than the first page that left it', () => {
    // "d" moved to the top; "z" was deleted elsewhere (newer than the new first page's last row).
    const shown = [row('z', '2026-12-03'), row('a', '2026-12-02'), ...older];
    const first = [row('d', '2026-12-05'), row('a', '2026-12-02')];
    expect(mergeFirstPage(shown, first, true).map((s) => s.id)).toEqual(['d', 'a', 'c', 'e']);
  });

  it('appends an older page without repeating a row', () => {
    expect(appendPage([row('a', '2026-12-02'), older[0] as SessionSummary], older).map((s) => s.id)).toEqual([
      'a',
      'c',
      'd',
      'e',
    ]);
  });
});
