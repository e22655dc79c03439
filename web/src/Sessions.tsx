import { useState } from 'react';
import type { SessionSummary } from './api.ts';

interface SessionsProps {
  sessions: SessionSummary[] | undefined;
  currentId: string;
  onOpen: (id: string) => void;
  onRename: (id: string, title: string) => Promise<void>;
  onDelete: (id: string) => Promise<void>;
}

const when = (iso: string) => {
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString([], { month: 'short', day: 'numeric' });
};

const titleOf = (session: SessionSummary) => session.title?.trim() || 'New conversation';

function SessionItem({
  session,
  current,
  onOpen,
  onRename,
  onDelete,
}: Omit<SessionsProps, 'sessions' | 'currentId'> & { session: SessionSummary; current: boolean }) {
  const [mode, setMode] = useState<'view' | 'rename' | 'confirm-delete'>('view');
  const [title, setTitle] = useState(titleOf(session));
  const [busy, setBusy] = useState(false);
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
      <button
        type="button"
        className="open"
        aria-current={current ? 'page' : undefined}
        onClick={() => onOpen(session.id)}
      >
        <span className="title">{name}</span>
        <span className="meta">
          {when(session.updated_at)} · {session.message_count}{' '}
          {session.message_count === 1 ? 'message' : 'messages'}
        </span>
      </button>
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
      ) : (
        <span className="actions">
          <button
            type="button"
            aria-label={`Rename ${name}`}
            onClick={() => {
              setTitle(name);
              setMode('rename');
            }}
          >
            Rename
          </button>
          <button type="button" aria-label={`Delete ${name}`} onClick={() => setMode('confirm-delete')}>
            Delete
          </button>
        </span>
      )}
    </li>
  );
}

/** The person's conversations, newest activity first (GET /sessions). */
export function Sessions({ sessions, currentId, onOpen, onRename, onDelete }: SessionsProps) {
  if (sessions === undefined) return <p className="muted">Loading conversations…</p>;
  if (sessions.length === 0) return <p className="muted">No conversations yet.</p>;
  return (
    <ul className="sessions" aria-label="Conversations">
      {sessions.map((session) => (
        <SessionItem
          key={session.id}
          session={session}
          current={session.id === currentId}
          onOpen={onOpen}
          onRename={onRename}
          onDelete={onDelete}
        />
      ))}
    </ul>
  );
}
