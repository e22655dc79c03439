import { useEffect, useRef, useState } from 'react';
import type { SessionSummary } from './api.ts';
import { plural } from './plural.ts';

interface SessionsProps {
  sessions: SessionSummary[] | undefined;
  currentId: string;
  onOpen: (id: string) => void;
  onRename: (id: string, title: string) => Promise<void>;
  onDelete: (id: string) => Promise<void>;
  onExport: (session: SessionSummary, format: 'markdown' | 'json') => Promise<void>;
}

const when = (iso: string, now: Date) => {
  const date = new Date(iso);
  const today = now.toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString([], { month: 'short', day: 'numeric' });
};

const DAY_MS = 86_400_000;

/** "Today", "Yesterday", "Previous 7 days", "Previous 30 days", then by month: by the last activity. */
function dateGroupOf(iso: string, now: Date): string {
  const date = new Date(iso);
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const time = date.getTime();
  if (time >= startOfToday) return 'Today';
  if (time >= startOfToday - DAY_MS) return 'Yesterday';
  if (time >= startOfToday - 7 * DAY_MS) return 'Previous 7 days';
  if (time >= startOfToday - 30 * DAY_MS) return 'Previous 30 days';
  return date.toLocaleDateString([], { month: 'long', year: 'numeric' });
}

/** The list cut into date groups, in its own order (newest activity first). */
export function groupByDate(sessions: SessionSummary[], now: Date) {
  const groups: Array<{ label: string; sessions: SessionSummary[] }> = [];
  for (const session of sessions) {
    const label = dateGroupOf(session.updated_at, now);
    const last = groups.at(-1);
    if (last?.label === label) last.sessions.push(session);
    else groups.push({ label, sessions: [session] });
  }
  return groups;
}

const titleOf = (session: SessionSummary) => session.title?.trim() || 'New conversation';

/** The row's actions, behind one button: a disclosure (Escape or a click elsewhere closes it). */
function RowMenu({
  name,
  onRename,
  onDelete,
  onExport,
}: {
  name: string;
  onRename: () => void;
  onDelete: () => void;
  onExport: (format: 'markdown' | 'json') => void;
}) {
  const [open, setOpen] = useState(false);
  const root = useRef<HTMLDivElement>(null);
  const toggle = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (!open) return;
    const onPointer = (event: PointerEvent) => {
      if (!root.current?.contains(event.target as Node)) setOpen(false);
    };
    const onKey = (event: KeyboardEvent) => {
      if (event.key !== 'Escape') return;
      event.preventDefault();
      setOpen(false);
      toggle.current?.focus();
    };
    document.addEventListener('pointerdown', onPointer);
    document.addEventListener('keydown', onKey, true);
    return () => {
      document.removeEventListener('pointerdown', onPointer);
      document.removeEventListener('keydown', onKey, true);
    };
  }, [open]);
  const pick = (action: () => void) => () => {
    setOpen(false);
    action();
  };
  return (
    <div className="row-menu" ref={root}>
      <button
        type="button"
        ref={toggle}
        className="row-menu-toggle"
        aria-expanded={open}
        aria-label={`Actions for ${name}`}
        onClick={() => setOpen((value) => !value)}
      >
        <span aria-hidden="true">⋯</span>
      </button>
      {open ? (
        <ul className="row-menu-items">
          <li>
            <button type="button" onClick={pick(onRename)}>
              Rename
            </button>
          </li>
          <li>
            <button type="button" onClick={pick(() => onExport('markdown'))}>
              Export as Markdown
            </button>
          </li>
          <li>
            <button type="button" onClick={pick(() => onExport('json'))}>
              Export as JSON
            </button>
          </li>
          <li>
            <button type="button" className="danger" onClick={pick(onDelete)}>
              Delete
            </button>
          </li>
        </ul>
      ) : null}
    </div>
  );
}

function SessionItem({
  session,
  current,
  now,
  onOpen,
  onRename,
  onDelete,
  onExport,
}: Omit<SessionsProps, 'sessions' | 'currentId'> & { session: SessionSummary; current: boolean; now: Date }) {
  const [mode, setMode] = useState<'view' | 'rename' | 'confirm-delete'>('view');
  const [title, setTitle] = useState(titleOf(session));
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | undefined>();
  const name = titleOf(session);

  if (mode === 'rename') {
    const save = async () => {
      const next = title.trim();
      if (!next || next === name) return setMode('view');
      setBusy(true);
      try {
        await onRename(session.id, next);
        setMode('view');
      } finally {
        setBusy(false);
      }
    };
    return (
      <li className="session editing">
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void save();
          }}
        >
          <label className="visually-hidden" htmlFor={`title-${session.id}`}>
            New title for {name}
          </label>
          <input
            id={`title-${session.id}`}
            value={title}
            maxLength={120}
            // biome-ignore lint/a11y/noAutofocus: the field appears because the person asked to rename.
            autoFocus
            onChange={(event) => setTitle(event.target.value)}
            onKeyDown={(event) => {
              if (event.key === 'Escape') setMode('view');
            }}
          />
          <button type="submit" disabled={busy}>
            Save
          </button>
          <button type="button" onClick={() => setMode('view')}>
            Cancel
          </button>
        </form>
      </li>
    );
  }

  return (
    <li className={`session${current ? ' current' : ''}`}>
      <div className="session-row">
        <button
          type="button"
          className="open"
          aria-current={current ? 'page' : undefined}
          onClick={() => onOpen(session.id)}
        >
          <span className="title">{name}</span>
          <span className="meta">
            {when(session.updated_at, now)} · {plural(session.message_count, 'message')}
          </span>
        </button>
        <RowMenu
          name={name}
          onRename={() => {
            setTitle(name);
            setMode('rename');
          }}
          onDelete={() => setMode('confirm-delete')}
          onExport={(format) => {
            setProblem(undefined);
            onExport(session, format).catch(() => setProblem('The export failed. Try again.'));
          }}
        />
      </div>
      {problem ? (
        <p className="row-problem" role="alert">
          {problem}
        </p>
      ) : null}
      {mode === 'confirm-delete' ? (
        <span className="actions confirm">
          <span>Delete?</span>
          <button
            type="button"
            className="danger"
            disabled={busy}
            aria-label={`Yes, delete ${name}`}
            onClick={async () => {
              setBusy(true);
              try {
                await onDelete(session.id);
              } finally {
                setBusy(false);
                setMode('view');
              }
            }}
          >
            Yes
          </button>
          <button type="button" aria-label={`Keep ${name}`} onClick={() => setMode('view')}>
            No
          </button>
        </span>
      ) : null}
    </li>
  );
}

/** The person's conversations, newest activity first (GET /sessions), in date groups. */
export function Sessions({ sessions, currentId, ...actions }: SessionsProps) {
  if (sessions === undefined) return <p className="muted">Loading conversations…</p>;
  if (sessions.length === 0) return <p className="muted">No conversations yet.</p>;
  const now = new Date();
  return (
    <ul className="sessions" aria-label="Conversations">
      {groupByDate(sessions, now).map((group) => (
        <li key={group.label} className="date-group">
          <h2 className="date-label">{group.label}</h2>
          <ul aria-label={group.label}>
            {group.sessions.map((session) => (
              <SessionItem
                key={session.id}
                session={session}
                current={session.id === currentId}
                now={now}
                {...actions}
              />
            ))}
          </ul>
        </li>
      ))}
    </ul>
  );
}
