import { type FormEvent, useEffect, useId, useRef, useState } from 'react';
import type { FeedbackBody, MessageFeedback } from './types.ts';

/** What a message offers beside its text: versions, edit, rating, continue (each only where it applies). */
export interface MessageActions {
  /** Shows another version of a message (its stored id). */
  onVersion?: ((id: string) => void) | undefined;
  /** Sends an edited question as a new version of it. */
  onEdit?: ((text: string) => void) | undefined;
  /** Rates an answer; `undefined` takes the rating back. */
  onFeedback?: ((feedback: FeedbackBody | undefined) => Promise<void>) | undefined;
  /** Asks the model to go on with a stopped answer. */
  onContinue?: (() => void) | undefined;
}

/** "‹ 2/3 ›" between a message's versions (edits of a question, regenerations of an answer). */
export function VersionNav({
  versions,
  current,
  what,
  onVersion,
}: {
  versions: string[];
  current: string;
  what: 'question' | 'answer';
  onVersion: ((id: string) => void) | undefined;
}) {
  const at = versions.indexOf(current);
  if (at < 0 || versions.length < 2) return null;
  const go = (to: number) => {
    const id = versions[to];
    if (id) onVersion?.(id);
  };
  return (
    <nav className="versions" aria-label={`Versions of this ${what}`}>
      <button
        type="button"
        className="link"
        disabled={at === 0 || !onVersion}
        onClick={() => go(at - 1)}
        aria-label={`Previous version of this ${what}`}
      >
        ‹
      </button>
      <span className="version-count">
        {at + 1}/{versions.length}
      </span>
      <button
        type="button"
        className="link"
        disabled={at === versions.length - 1 || !onVersion}
        onClick={() => go(at + 1)}
        aria-label={`Next version of this ${what}`}
      >
        ›
      </button>
    </nav>
  );
}

/** The question in an editable box; saving sends it as a new version, the old one stays readable. */
export function EditQuestion({
  text,
  onSave,
  onCancel,
}: {
  text: string;
  onSave: (text: string) => void;
  onCancel: () => void;
}) {
  const [draft, setDraft] = useState(text);
  const id = useId();
  const box = useRef<HTMLTextAreaElement>(null);
  useEffect(() => box.current?.focus(), []);
  const save = (event: FormEvent) => {
    event.preventDefault();
    const edited = draft.trim();
    if (edited && edited !== text) onSave(edited);
    else onCancel();
  };
  return (
    <form className="edit-question" onSubmit={save}>
      <label htmlFor={id} className="visually-hidden">
        Edit your question
      </label>
      <textarea
        id={id}
        ref={box}
        value={draft}
        rows={3}
        onChange={(event) => setDraft(event.target.value)}
        onKeyDown={(event) => {
          if (event.key === 'Escape') {
            event.preventDefault();
            onCancel();
          }
        }}
      />
      <div className="edit-actions">
        <button type="submit" disabled={!draft.trim()}>
          Save and send
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** A thumb icon (Material's thumb_up path, Apache-2.0), drawn so it shows without an emoji font. */
function Thumb({ down }: { down?: boolean }) {
  return (
    <svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false">
      <path
        transform={down ? 'rotate(180 12 12)' : undefined}
        fill="currentColor"
        d="M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z"
      />
    </svg>
  );
}

/** Thumbs up or down, with an optional reason after a thumbs down; the rating is saved at once. */
export function FeedbackControls({
  feedback,
  onFeedback,
}: {
  feedback: MessageFeedback | undefined;
  onFeedback: (feedback: FeedbackBody | undefined) => Promise<void>;
}) {
  const [asking, setAsking] = useState(false);
  const [reason, setReason] = useState('');
  const [problem, setProblem] = useState('');
  const reasonId = useId();
  const rating = feedback?.rating;
  const save = (next: FeedbackBody | undefined) => {
    setProblem('');
    onFeedback(next).catch(() => setProblem('Your rating could not be saved. Try again.'));
  };
  const rate = (to: 'up' | 'down') => {
    if (rating === to) {
      setAsking(false);
      save(undefined);
      return;
    }
    setAsking(to === 'down');
    save({ rating: to });
  };
  return (
    <span className="feedback">
      <button
        type="button"
        className="thumb"
        aria-pressed={rating === 'up'}
        aria-label="Good answer"
        onClick={() => rate('up')}
      >
        <Thumb />
      </button>
      <button
        type="button"
        className="thumb"
        aria-pressed={rating === 'down'}
        aria-label="Bad answer"
        onClick={() => rate('down')}
      >
        <Thumb down />
      </button>
      {asking ? (
        <form
          className="feedback-reason"
          onSubmit={(event) => {
            event.preventDefault();
            const said = reason.trim();
            setAsking(false);
            if (said) save({ rating: 'down', reason: said });
          }}
        >
          <label htmlFor={reasonId} className="visually-hidden">
            What was wrong? (optional)
          </label>
          <input
            id={reasonId}
            className="reason-input"
            value={reason}
            maxLength={500}
            placeholder="What was wrong? (optional)"
            onChange={(event) => setReason(event.target.value)}
          />
          <button type="submit">Send</button>
        </form>
      ) : null}
      {feedback?.reason && !asking ? <span className="feedback-said">“{feedback.reason}”</span> : null}
      {problem ? (
        <span className="feedback-problem" role="alert">
          {problem}
        </span>
      ) : null}
    </span>
  );
}
