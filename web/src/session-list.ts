import { useCallback, useRef, useState } from 'react';
import type { Api, SessionSummary } from './api.ts';
import { describeProblem } from './errors.ts';

/** Conversations per page of the list: the first page, and each "Show older conversations". */
const LIST_PAGE = 50;

/**
 * The first page read again, with the older pages already shown kept after it: a refresh after a turn
 * must not take away what the person scrolled to. Kept rows are those older than the new first page's
 * last (a row that moved up is in the first page; one deleted elsewhere drops when it was newer).
 */
export function mergeFirstPage(
  shown: SessionSummary[] | undefined,
  first: SessionSummary[],
  keepOlder: boolean,
): SessionSummary[] {
  if (!keepOlder || !shown) return first;
  const ids = new Set(first.map((s) => s.id));
  const edge = first.at(-1)?.updated_at ?? '';
  return [...first, ...shown.filter((s) => !ids.has(s.id) && s.updated_at <= edge)];
}

/** Appends an older page, each conversation once (a row can move while the person pages). */
export function appendPage(shown: SessionSummary[] | undefined, older: SessionSummary[]): SessionSummary[] {
  const ids = new Set((shown ?? []).map((s) => s.id));
  return [...(shown ?? []), ...older.filter((s) => !ids.has(s.id))];
}

/** The person's conversation list, page by page (GET /sessions with its cursor). */
export function useSessionList(api: Api) {
  const [sessions, setSessions] = useState<SessionSummary[] | undefined>();
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [listProblem, setListProblem] = useState<string | undefined>();
  const [loadingMore, setLoadingMore] = useState(false);
  /** Older pages are shown: a refresh keeps them and their cursor. */
  const pagedOn = useRef(false);

  /** The first page again; resolves to it (or `undefined` when it failed: the problem is shown). */
  const refreshSessions = useCallback(async () => {
    try {
      const page = await api.sessionPage({ limit: LIST_PAGE });
      setSessions((shown) => mergeFirstPage(shown, page.sessions, pagedOn.current));
      if (!pagedOn.current) setNextCursor(page.next_cursor);
      setListProblem(undefined);
      return page.sessions;
    } catch (error) {
      setListProblem(describeProblem(error).message);
      return undefined;
    }
  }, [api]);

  const loadMore = useCallback(async () => {
    if (!nextCursor || loadingMore) return;
    setLoadingMore(true);
    try {
      const page = await api.sessionPage({ limit: LIST_PAGE, cursor: nextCursor });
      pagedOn.current = true;
      setSessions((shown) => appendPage(shown, page.sessions));
      setNextCursor(page.next_cursor);
      setListProblem(undefined);
    } catch (error) {
      setListProblem(describeProblem(error).message);
    } finally {
      setLoadingMore(false);
    }
  }, [api, nextCursor, loadingMore]);

  /** Nothing left (after an erasure): no older page either. */
  const clearSessions = useCallback(() => {
    pagedOn.current = false;
    setNextCursor(null);
    setSessions([]);
  }, []);

  return {
    sessions,
    setSessions,
    refreshSessions,
    clearSessions,
    listProblem,
    nextCursor,
    loadMore,
    loadingMore,
  };
}
