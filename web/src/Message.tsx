import { lazy, memo, Suspense, useState } from 'react';
import { AttachmentList, filesOf } from './Attachments.tsx';
import type { ChatMessage } from './api.ts';
import { CopyButton } from './CopyButton.tsx';
import { numberedSources } from './citations.tsx';
import { EditQuestion, FeedbackControls, type MessageActions, VersionNav } from './Versions.tsx';

/**
 * The Markdown renderer (react-markdown, GFM, sanitizer, highlighter: about 300 kB) is a chunk of its own,
 * fetched while the page starts, so the first paint does not wait for it; until it is there an answer
 * shows as plain text.
 */
const loadMarkdown = () => import('./Markdown.tsx');
const Markdown = lazy(loadMarkdown);
export const preloadMarkdown = () => void loadMarkdown();

const ms = (value: number | undefined) =>
  value === undefined ? '–' : value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;

export const textOf = (message: ChatMessage): string =>
  message.parts.flatMap((part) => (part.type === 'text' ? [part.text] : [])).join('');

/**
 * Passages the retriever scored under this are not shown as sources. Read from a part's
 * `providerMetadata.knowledgeBase.score` when the API sends one (Bedrock's relevance, 0 to 1).
 */
const RELEVANCE_FLOOR = 0.4;

interface Citation {
  id: string;
  title: string;
  detail: string | undefined;
  url: string | undefined;
}

const scoreOf = (part: { providerMetadata?: unknown }): number | undefined => {
  const score = (part.providerMetadata as { knowledgeBase?: { score?: unknown } } | undefined)?.knowledgeBase
    ?.score;
  return typeof score === 'number' ? score : undefined;
};

function citationsOf(message: ChatMessage): Citation[] {
  const seen = new Set<string>();
  const out: Citation[] = [];
  for (const part of message.parts) {
    if (part.type !== 'source-url' && part.type !== 'source-document') continue;
    const score = scoreOf(part);
    if (score !== undefined && score < RELEVANCE_FLOOR) continue;
    // Several passages of one document are one citation.
    const key = part.type === 'source-url' ? part.url : `${part.title}\u0000${part.filename ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (part.type === 'source-url') {
      out.push({ id: part.sourceId, title: part.title ?? part.url, detail: undefined, url: part.url });
    } else {
      out.push({ id: part.sourceId, title: part.title, detail: part.filename, url: undefined });
    }
  }
  return out;
}

/** First byte, first token, cache states and usage: for the curious, behind "Details". */
function AnswerFacts({ message }: { message: ChatMessage }) {
  const meta = message.metadata;
  if (!meta) return null;
  const facts: string[] = [];
  if (meta.timings) {
    facts.push(`first byte ${ms(meta.timings.first_byte_ms)}`);
    facts.push(`first token ${ms(meta.timings.model_first_token_ms)}`);
  }
  if (meta.cache) {
    const states = (['profile', 'history', 'rag'] as const)
      .filter((kind) => meta.cache?.[kind])
      .map((kind) => `${kind} ${meta.cache?.[kind]}`);
    if (states.length) facts.push(`cache: ${states.join(', ')}`);
  }
  if (meta.usage?.output_tokens !== undefined) {
    facts.push(`${meta.usage.input_tokens ?? 0} in / ${meta.usage.output_tokens} out tokens`);
  }
  if (facts.length === 0) return null;
  return (
    <details className="facts">
      <summary>Details</summary>
      <p>{facts.join(' · ')}</p>
    </details>
  );
}

/** How the answer ended, when not on its own: said on the answer itself. */
const ENDINGS: Record<string, string> = {
  stopped: 'Stopped',
  max_tokens: 'Cut at the length limit',
  content_filtered: 'Withheld by the content filter',
};

interface MessageProps {
  message: ChatMessage;
  streaming: boolean;
  /** Shown under the last answer when nothing is running. */
  onRegenerate?: (() => void) | undefined;
  /** Versions, edit, rating and continue, where they apply (see `MessageActions`). */
  actions?: MessageActions | undefined;
}

/** Memoized: while an answer streams, the messages before it are not rendered again. */
export const MessageView = memo(function MessageView({
  message,
  streaming,
  onRegenerate,
  actions,
}: MessageProps) {
  const [editing, setEditing] = useState(false);
  const text = textOf(message);
  const storedId = message.metadata?.messageId ?? message.id;
  const versions = message.metadata?.versions;
  const citations = message.role === 'assistant' ? citationsOf(message) : [];
  const mine = message.role === 'user';
  const ending = !mine && !streaming ? ENDINGS[message.metadata?.stopReason ?? ''] : undefined;
  return (
    <article
      className={`message ${mine ? 'mine' : 'answer'}`}
      aria-busy={streaming}
      data-message-id={message.id}
    >
      <h3 className="visually-hidden">{mine ? 'You' : 'Assistant'}</h3>
      <div className="bubble">
        {mine ? <AttachmentList files={filesOf(message.parts)} /> : null}
        {mine && editing && actions?.onEdit ? (
          <EditQuestion
            text={text}
            onCancel={() => setEditing(false)}
            onSave={(edited) => {
              setEditing(false);
              actions.onEdit?.(edited);
            }}
          />
        ) : mine ? (
          <p className="text plain">{text}</p>
        ) : text ? (
          <Suspense fallback={<p className="text plain">{text}</p>}>
            <Markdown text={text} streaming={streaming} citations={numberedSources(message)} />
          </Suspense>
        ) : streaming ? (
          <p className="text pending">Thinking…</p>
        ) : null}
        {streaming && text ? <span className="cursor" aria-hidden="true" /> : null}
        {ending ? <p className="ending">{ending}</p> : null}
      </div>
      {mine && !editing && (versions || actions?.onEdit) ? (
        <div className="question-actions">
          {versions ? (
            <VersionNav
              versions={versions}
              current={storedId}
              what="question"
              onVersion={actions?.onVersion}
            />
          ) : null}
          {actions?.onEdit ? (
            <button type="button" className="link" onClick={() => setEditing(true)}>
              Edit
            </button>
          ) : null}
        </div>
      ) : null}
      {citations.length > 0 ? (
        // A group, not a region: one landmark per answer would repeat the name "Sources" (axe landmark-unique).
        // biome-ignore lint/a11y/useSemanticElements: a fieldset groups form controls; these are links.
        <section className="sources" role="group" aria-label="Sources">
          <h4>Sources</h4>
          <ol>
            {citations.map((c) => (
              <li key={c.id}>
                {c.url ? (
                  <a href={c.url} target="_blank" rel="noreferrer noopener">
                    {c.title}
                  </a>
                ) : (
                  <span className="source-title">{c.title}</span>
                )}
                {c.detail ? <span className="source-detail"> {c.detail}</span> : null}
              </li>
            ))}
          </ol>
        </section>
      ) : null}
      {!mine && !streaming && (text || onRegenerate) ? (
        <div className="answer-actions">
          {versions ? (
            <VersionNav versions={versions} current={storedId} what="answer" onVersion={actions?.onVersion} />
          ) : null}
          {actions?.onContinue ? (
            <button type="button" className="link" onClick={actions.onContinue}>
              Continue
            </button>
          ) : null}
          {text ? <CopyButton label="answer" text={() => text} /> : null}
          {text && actions?.onFeedback ? (
            <FeedbackControls feedback={message.metadata?.feedback} onFeedback={actions.onFeedback} />
          ) : null}
          {onRegenerate ? (
            <button type="button" className="link" onClick={onRegenerate}>
              Regenerate
            </button>
          ) : null}
          <AnswerFacts message={message} />
        </div>
      ) : null}
    </article>
  );
});
