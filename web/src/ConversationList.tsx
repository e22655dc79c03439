import { type ComponentProps, useEffect, useId, useRef, useState } from 'react';
import { type Api, ApiError, type SessionSummary } from './api.ts';
import { describeProblem } from './errors.ts';
import { Sessions } from './Sessions.tsx';

type Actions = Omit<ComponentProps<typeof Sessions>, 'sessions' | 'currentId'>;

interface ConversationListProps extends Actions {
  api: Api;
  sessions: SessionSummary[] | undefined;
  currentId: string;
  /** `null` when the list is complete. */
  nextCursor: string | null;
  loadingMore: boolean;
  onLoadMore: () => void;
}

/** Results per search request; "More results" asks for the next. */
const SEARCH_PAGE = 20;
/** Typing pauses this long before the search is sent. */
const SEARCH_DELAY_MS = 300;

type Search =
  | { state: 'idle' }
  | { state: 'searching'; q: string }
  | { state: 'done'; q: string; results: SessionSummary[]; next: string | null; more: boolean }
  | { state: 'failed'; q: string; message: string };

/**
 * "Show older conversations" at the end of the list; it also loads by itself when scrolled into view
 * (the person can still press it: a keyboard user never scrolls).
 */
function LoadMore({ loading, onLoad }: { loading: boolean; onLoad: () => void }) {
  const button = useRef<HTMLButtonElement>(null);
  const load = useRef(onLoad);
  load.current = onLoad;
  useEffect(() => {
    const element = button.current;
    if (!element || typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) load.current();
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return (
    <button type="button" ref={button} className="load-more link" disabled={loading} onClick={onLoad}>
      {loading ? 'Loading older conversations…' : 'Show older conversations'}
    </button>
  );
}

/** The conversation list with a search over titles and message text (GET /sessions?q=), paged both ways. */
export function ConversationList({
  api,
  sessions,
  currentId,
  nextCursor,
  loadingMore,
  onLoadMore,
  ...actions
}: ConversationListProps) {
  const [query, setQuery] = useState('');
  const [search, setSearch] = useState<Search>({ state: 'idle' });
  const searchId = useId();
  const q = query.trim();

  useEffect(() => {
    if (!q) {
      setSearch({ state: 'idle' });
      return;
    }
    let live = true;
    const timer = setTimeout(() => {
      setSearch({ state: 'searching', q });
      api.sessionPage({ q, limit: SEARCH_PAGE }).then(
        (page) =>
          live &&
          setSearch({ state: 'done', q, results: page.sessions, next: page.next_cursor, more: false }),
        (error: unknown) =>
          live &&
          setSearch({
            state: 'failed',
            q,
            // A 400 says what is wrong with the words (only stopwords, too long): its own sentence.
            message:
              error instanceof ApiError && error.status === 400
                ? error.message
                : describeProblem(error).message,
          }),
      );
    }, SEARCH_DELAY_MS);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [api, q]);

  const moreResults = async () => {
    if (search.state !== 'done' || !search.next) return;
    setSearch({ ...search, more: true });
    try {
      const page = await api.sessionPage({ q: search.q, limit: SEARCH_PAGE, cursor: search.next });
      const ids = new Set(search.results.map((s) => s.id));
      setSearch({
        ...search,
        results: [...search.results, ...page.sessions.filter((s) => !ids.has(s.id))],
        next: page.next_cursor,
        more: false,
      });
    } catch (error) {
      setSearch({ state: 'failed', q: search.q, message: describeProblem(error).message });
    }
  };

  // Rename and delete act on the results too, so they read the same as the list.
  const inResults = (change: (results: SessionSummary[]) => SessionSummary[]) =>
    setSearch((current) =>
      current.state === 'done' ? { ...current, results: change(current.results) } : current,
    );
  const resultActions: Actions = {
    ...actions,
    onRename: async (id, title) => {
      await actions.onRename(id, title);
      inResults((results) => results.map((s) => (s.id === id ? { ...s, title } : s)));
    },
    onDelete: async (id) => {
      await actions.onDelete(id);
      inResults((results) => results.filter((s) => s.id !== id));
    },
  };

  return (
    <>
      <search className="session-search">
        <label htmlFor={searchId} className="visually-hidden">
          Search conversations
        </label>
        <input
          id={searchId}
          type="search"
          placeholder="Search conversations"
          value={query}
          maxLength={100}
          autoComplete="off"
          onChange={(event) => setQuery(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === 'Escape' && query) {
              // Clears the search (and is not taken as "stop" or "close the drawer").
              event.preventDefault();
              event.stopPropagation();
              setQuery('');
            }
          }}
        />
      </search>
      <div className="session-scroll">
        {search.state === 'idle' ? (
          <>
            <Sessions sessions={sessions} currentId={currentId} {...actions} />
            {nextCursor && sessions?.length ? <LoadMore loading={loadingMore} onLoad={onLoadMore} /> : null}
          </>
        ) : (
          <section aria-label="Search results" aria-busy={search.state === 'searching'}>
            <p className="muted search-status" role="status">
              {search.state === 'searching'
                ? 'Searching…'
                : search.state === 'failed'
                  ? ''
                  : search.results.length === 0
                    ? `No conversation holds “${search.q}”${search.next ? ' among the newest; more to search' : ''}.`
                    : `Conversations holding “${search.q}”`}
            </p>
            {search.state === 'failed' ? (
              <p className="problem other" role="alert">
                {search.message}
              </p>
            ) : null}
            {search.state === 'done' && search.results.length > 0 ? (
              <Sessions sessions={search.results} currentId={currentId} {...resultActions} />
            ) : null}
            {search.state === 'done' && search.next ? (
              <button
                type="button"
                className="load-more link"
                disabled={search.more}
                onClick={() => void moreResults()}
              >
                {search.more
                  ? 'Searching…'
                  : search.results.length
                    ? 'More results'
                    : 'Search older conversations'}
              </button>
            ) : null}
          </section>
        )}
      </div>
    </>
  );
}
