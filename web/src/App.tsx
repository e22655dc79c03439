import { generateId } from 'ai';
import { type ReactNode, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Api, type ChatMessage, type SessionSummary, type Usage } from './api.ts';
import { devSigner, OAuthClient, type Signer } from './auth.ts';
import { ChatView } from './Chat.tsx';
import { ConversationList } from './ConversationList.tsx';
import type { PageConfig } from './config.ts';
import { describeProblem } from './errors.ts';
import { conversationJson, conversationMarkdown, download, fileNameOf } from './exports.ts';
import { LiveChannel, useFreshList } from './live.ts';
import { SignIn } from './SignIn.tsx';
import { useSessionList } from './session-list.ts';
import { UsageView } from './Usage.tsx';

const DEV_USER_KEY = 'chat.devUser';

/** `#/c/<id>` keeps the open conversation in the address, so a reload reopens (and resumes) it. */
const idFromHash = () => /^#\/c\/([A-Za-z0-9_-]{1,128})$/.exec(window.location.hash)?.[1];
const showInAddress = (id: string | undefined) => {
  const url = `${window.location.pathname}${window.location.search}${id ? `#/c/${id}` : ''}`;
  if (url !== `${window.location.pathname}${window.location.search}${window.location.hash}`) {
    window.history.pushState(null, '', url);
  }
};

type Opened =
  | { id: string; messages: ChatMessage[]; resume: boolean }
  | { id: string; error: string; messages?: undefined };

function Workspace({ config, signer, account }: { config: PageConfig; signer: Signer; account: ReactNode }) {
  const api = useMemo(() => new Api(config.apiUrl, () => signer.token()), [config.apiUrl, signer]);
  /** Conversations created on this page that have nothing to load yet. */
  const fresh = useRef(new Set<string>());
  const [chatId, setChatId] = useState(() => {
    const kept = idFromHash();
    if (kept) return kept;
    const id = generateId();
    fresh.current.add(id);
    return id;
  });
  const chatIdRef = useRef(chatId);
  chatIdRef.current = chatId;
  const [opened, setOpened] = useState<Opened | undefined>();
  const [attempt, setAttempt] = useState(0);
  const { sessions, setSessions, refreshSessions, clearSessions, listProblem, ...paging } =
    useSessionList(api);
  const [usage, setUsage] = useState<Usage | undefined>();
  const [drawerOpen, setDrawerOpen] = useState(false);

  const refreshUsage = useCallback(async () => {
    setUsage(await api.usage().catch(() => undefined));
  }, [api]);
  // The other tabs of this user: they hear of list changes and turns at once (see live.ts).
  const [live] = useState(() => new LiveChannel(signer.user));
  useEffect(() => {
    live.open();
    return () => live.close();
  }, [live]);
  useFreshList(live, refreshSessions);
  const listChanged = useCallback(() => live.tell({ type: 'sessions' }), [live]);

  useEffect(() => {
    void refreshSessions();
    void refreshUsage();
  }, [refreshSessions, refreshUsage]);

  useEffect(() => {
    const onHash = () => {
      const id = idFromHash();
      if (id && id !== chatIdRef.current) setChatId(id);
    };
    window.addEventListener('hashchange', onHash);
    window.addEventListener('popstate', onHash);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('popstate', onHash);
    };
  }, []);

  // Opening a conversation: its messages as useChat's initial messages, then resume (an answer may still
  // be running: after a reload, or started in another tab). A new conversation has nothing to load.
  // biome-ignore lint/correctness/useExhaustiveDependencies: `attempt` is the retry trigger.
  useEffect(() => {
    showInAddress(chatId);
    if (fresh.current.has(chatId)) {
      setOpened({ id: chatId, messages: [], resume: false });
      return;
    }
    setOpened(undefined);
    let current = true;
    api.messages(chatId).then(
      (messages) => current && setOpened({ id: chatId, messages: messages ?? [], resume: true }),
      (error: unknown) => current && setOpened({ id: chatId, error: describeProblem(error).message }),
    );
    return () => {
      current = false;
    };
  }, [chatId, api, attempt]);

  /**
   * After a turn: usage, and the list. A new conversation's title is written after its first answer by
   * the consumer (the first words at once, a generated title a moment later), so the list is read again
   * a few times; the stored usage is the consumer's too.
   */
  const settled = useCallback(() => {
    void refreshUsage();
    const delays = [600, 1500, 3500, 8000];
    const poll = async (round: number) => {
      const list = await refreshSessions();
      listChanged();
      if (round > 0) void refreshUsage();
      const mine = list?.find((s) => s.id === chatIdRef.current);
      const young = !mine?.title || mine.message_count <= 2;
      const delay = delays[round];
      if (young && delay !== undefined) setTimeout(() => void poll(round + 1), delay);
    };
    void poll(0);
  }, [refreshSessions, refreshUsage, listChanged]);

  const started = useCallback(() => {
    const now = new Date().toISOString();
    const id = chatIdRef.current;
    // It has something to load now: coming back to it must read it (and reattach to its answer).
    fresh.current.delete(id);
    setSessions((list) =>
      list?.some((s) => s.id === id)
        ? list
        : [
            { id, title: '', title_source: 'auto', created_at: now, updated_at: now, message_count: 1 },
            ...(list ?? []),
          ],
    );
  }, [setSessions]);

  const newChat = () => {
    const id = generateId();
    fresh.current.add(id);
    setChatId(id);
    setDrawerOpen(false);
  };

  // The phone drawer: Escape closes it (before anything else hears the key), focus moves into it.
  const sidebar = useRef<HTMLElement>(null);
  useEffect(() => {
    if (!drawerOpen) return;
    sidebar.current?.querySelector<HTMLElement>('.new-chat')?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== 'Escape') return;
      // Escape in a search that holds words clears it first.
      const target = event.target as HTMLInputElement | null;
      if (target?.type === 'search' && target.value) return;
      event.preventDefault();
      setDrawerOpen(false);
      document.querySelector<HTMLElement>('.top .menu')?.focus();
    };
    window.addEventListener('keydown', onKey, true);
    return () => window.removeEventListener('keydown', onKey, true);
  }, [drawerOpen]);

  const exportConversation = async (session: SessionSummary, format: 'markdown' | 'json') => {
    const messages = await api.allMessages(session.id);
    const title = session.title?.trim() || 'Conversation';
    if (format === 'markdown') {
      download(fileNameOf(title, 'md'), 'text/markdown', conversationMarkdown(title, messages));
    } else {
      download(
        fileNameOf(title, 'json'),
        'application/json',
        conversationJson({ id: session.id, title }, messages),
      );
    }
  };

  const [erasing, setErasing] = useState<'idle' | 'confirm' | 'busy' | 'failed'>('idle');
  const erase = async () => {
    setErasing('busy');
    try {
      await api.eraseMe();
      clearSessions();
      listChanged();
      setErasing('idle');
      newChat();
      void refreshUsage();
    } catch {
      setErasing('failed');
    }
  };

  return (
    <div className={`app${drawerOpen ? ' drawer-open' : ''}`}>
      <header className="top">
        <button
          type="button"
          className="menu"
          aria-expanded={drawerOpen}
          aria-controls="sidebar"
          onClick={() => setDrawerOpen((open) => !open)}
        >
          Conversations
        </button>
        <h1>Streaming chat</h1>
        <ThemeToggle />
        <div className="account">{account}</div>
      </header>
      <div className="body">
        {drawerOpen ? (
          <button
            type="button"
            className="backdrop"
            tabIndex={-1}
            aria-label="Close the conversation list"
            onClick={() => setDrawerOpen(false)}
          />
        ) : null}
        <nav id="sidebar" className="sidebar" aria-label="Conversations" ref={sidebar}>
          <button type="button" className="new-chat" onClick={newChat}>
            New chat
          </button>
          {listProblem ? (
            <p className="problem other" role="alert">
              {listProblem}{' '}
              <button type="button" className="link" onClick={() => void refreshSessions()}>
                Retry
              </button>
            </p>
          ) : null}
          <ConversationList
            api={api}
            sessions={sessions}
            nextCursor={paging.nextCursor}
            loadingMore={paging.loadingMore}
            onLoadMore={() => void paging.loadMore()}
            currentId={chatId}
            onOpen={(id) => {
              setChatId(id);
              setDrawerOpen(false);
            }}
            onRename={async (id, title) => {
              await api.rename(id, title);
              setSessions((list) => list?.map((s) => (s.id === id ? { ...s, title } : s)));
              listChanged();
            }}
            onDelete={async (id) => {
              await api.remove(id);
              setSessions((list) => list?.filter((s) => s.id !== id));
              listChanged();
              if (id === chatIdRef.current) newChat();
            }}
            onExport={exportConversation}
          />
          <UsageView usage={usage} />
          <section className="erase" aria-label="Your data">
            {erasing === 'idle' ? (
              <button type="button" className="link danger-link" onClick={() => setErasing('confirm')}>
                Erase my data…
              </button>
            ) : (
              <div className="erase-confirm">
                <p>
                  {erasing === 'failed'
                    ? 'The data could not be erased. Try again.'
                    : 'Erase all your conversations and usage? This cannot be undone.'}
                </p>
                <button
                  type="button"
                  className="danger"
                  disabled={erasing === 'busy'}
                  onClick={() => void erase()}
                >
                  {erasing === 'busy' ? 'Erasing…' : 'Erase everything'}
                </button>{' '}
                <button type="button" onClick={() => setErasing('idle')}>
                  Cancel
                </button>
              </div>
            )}
          </section>
        </nav>
        <main className="main">
          {opened === undefined || opened.id !== chatId ? (
            <p className="muted loading">Opening the conversation…</p>
          ) : opened.messages === undefined ? (
            <div className="problem other" role="alert">
              <p>{opened.error}</p>
              <button type="button" onClick={() => setAttempt((n) => n + 1)}>
                Try again
              </button>
            </div>
          ) : (
            <ChatView
              key={`${signer.user}:${opened.id}`}
              id={opened.id}
              initialMessages={opened.messages}
              resume={opened.resume}
              api={api}
              signer={signer}
              onSettled={settled}
              onStarted={started}
              live={live}
              activity={sessions?.find((s) => s.id === opened.id)?.updated_at}
            />
          )}
        </main>
      </div>
    </div>
  );
}

const THEME_KEY = 'chat.theme';
type Theme = 'light' | 'dark';

/** The kept choice, applied on <html> (CSS reads data-theme); none: the OS decides. */
export function applyKeptTheme(): void {
  const kept = localStorage.getItem(THEME_KEY);
  if (kept === 'light' || kept === 'dark') document.documentElement.dataset.theme = kept;
}

const shownTheme = (): Theme =>
  (document.documentElement.dataset.theme as Theme | undefined) ??
  (window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');

function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(shownTheme);
  return (
    <button
      type="button"
      className="theme"
      aria-pressed={theme === 'dark'}
      onClick={() => {
        const next: Theme = theme === 'dark' ? 'light' : 'dark';
        document.documentElement.dataset.theme = next;
        localStorage.setItem(THEME_KEY, next);
        setTheme(next);
      }}
    >
      <span aria-hidden="true">◐</span> <span className="theme-label">Dark mode</span>
    </button>
  );
}

function DevApp({ config, users }: { config: PageConfig; users: Record<string, string> }) {
  const names = Object.keys(users);
  const [user, setUser] = useState(() => {
    const kept = localStorage.getItem(DEV_USER_KEY);
    return kept && kept in users ? kept : (names[0] ?? '');
  });
  const signer = useMemo(() => devSigner(user, users[user] ?? ''), [user, users]);
  const account = (
    <label className="user-switch">
      User{' '}
      <select
        value={user}
        onChange={(event) => {
          if (event.target.value === user) return;
          // Another person: another list, and a new conversation (theirs are not this one's).
          showInAddress(undefined);
          localStorage.setItem(DEV_USER_KEY, event.target.value);
          setUser(event.target.value);
        }}
      >
        {names.map((name) => (
          <option key={name} value={name}>
            {name}
          </option>
        ))}
      </select>
    </label>
  );
  return <Workspace key={user} config={config} signer={signer} account={account} />;
}

function OAuthApp({ config, auth }: { config: PageConfig; auth: OAuthClient }) {
  const [signer, setSigner] = useState<Signer | undefined>(() => auth.restore());
  const [problem, setProblem] = useState<string | undefined>();
  const [completing, setCompleting] = useState(() => /[?&](code|error)=/.test(window.location.search));
  useEffect(() => {
    auth.onSignedOut = () => setSigner(undefined);
  }, [auth]);
  // Back from the managed login with `?code=…&state=…`: exchange it, then drop it from the address.
  useEffect(() => {
    if (!completing) return;
    const search = window.location.search;
    const clean = (hash: string) =>
      window.history.replaceState(null, '', `${window.location.pathname}${hash}`);
    auth.completeSignIn(search).then(
      (result) => {
        clean(result?.returnTo ?? '');
        if (result) setSigner(result.signer);
        setCompleting(false);
      },
      (failure: unknown) => {
        clean('');
        setProblem(failure instanceof Error ? failure.message : String(failure));
        setCompleting(false);
      },
    );
  }, [auth, completing]);
  if (completing) return <p className="muted loading">Signing in…</p>;
  if (!signer) return <SignIn auth={auth} problem={problem} />;
  const account = (
    <span className="signed-in">
      <span>{signer.user}</span>{' '}
      <button type="button" className="link" onClick={() => void auth.signOut()}>
        Sign out
      </button>
    </span>
  );
  return <Workspace key={signer.user} config={config} signer={signer} account={account} />;
}

export function App({ config }: { config: PageConfig }) {
  const auth = config.auth;
  const oauth = useMemo(() => (auth.mode === 'oauth' ? new OAuthClient(auth) : undefined), [auth]);
  if (auth.mode === 'dev') return <DevApp config={config} users={auth.users} />;
  return oauth ? <OAuthApp config={config} auth={oauth} /> : null;
}
