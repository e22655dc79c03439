import { Chat, useChat } from '@ai-sdk/react';
import type { FileUIPart } from 'ai';
import { type KeyboardEvent, useEffect, useId, useMemo, useRef, useState } from 'react';
import { DEFAULTS } from '../../functions/contracts/defaults.ts';
import { AttachButton, AttachmentList } from './Attachments.tsx';
import type { Api, ChatMessage } from './api.ts';
import type { Signer } from './auth.ts';
import { adoptVersions, CONTINUE_PROMPT, parentIdFor, rateWithRetry, showVersion } from './branching.ts';
import { ConversationTransport, holdsFinishedAnswer } from './conversation-transport.ts';
import { describeProblem, formatWait, isNetworkFailure } from './errors.ts';
import { adoptStored, followRunningTurn, type LiveChannel } from './live.ts';
import { MessageView, textOf } from './Message.tsx';
import type { MessageActions } from './Versions.tsx';

interface ChatViewProps {
  id: string;
  initialMessages: ChatMessage[];
  /** Reattach to an answer still being written (after a reload, or one started in another tab). */
  resume: boolean;
  api: Api;
  signer: Signer;
  /** A turn ended (answered, stopped or failed): time to refresh the list and the usage. */
  onSettled: () => void;
  /** The first message of a new conversation was sent. */
  onStarted: () => void;
  /** Tells this user's other tabs when a turn starts here, and hears theirs. */
  live: LiveChannel;
  /** When the conversation last changed as the list says (another device may have asked something). */
  activity?: string | undefined;
}

const RAG_KEY = 'chat.useRag';
/** The model this browser last picked; one the deployment no longer offers falls back to its default. */
const MODEL_KEY = 'chat.model';
/** How often a streaming answer re-renders at most (ms). */
const UI_THROTTLE_MS = 50;
/** The API's default limit (MAX_MESSAGE_CHARS); a deployment with another one still answers 400, and the draft stays. */
const MAX_CHARS = DEFAULTS.maxMessageChars;
const count = new Intl.NumberFormat();
/** Shown on an empty conversation: one click asks. */
const SUGGESTIONS = [
  'What is an HSA?',
  'Compare a Roth IRA and a traditional IRA in a table',
  'Show me code to compute compound interest',
  'How big should an emergency fund be?',
];
/** Waits `ms`, or less when the browser comes back online or `signal` aborts. */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', wake);
      window.removeEventListener('online', wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    signal.addEventListener('abort', wake);
    window.addEventListener('online', wake);
  });

const lastQuestion = (chat: Chat<ChatMessage>) => chat.messages.findLast((m) => m.role === 'user');

/** Read through a function: TypeScript would keep a narrowed `status` across the awaits. */
const failed = (chat: Chat<ChatMessage>) => chat.status === 'error';

/** Sends the last question again under its own id: the server never runs one message id twice. */
async function sendAgain(chat: Chat<ChatMessage>): Promise<void> {
  const question = lastQuestion(chat);
  if (question) await chat.sendMessage({ text: textOf(question), messageId: question.id });
}

/**
 * Adopts the stored conversation once it holds `answerId`, keeping what this page knows beyond it (the
 * live answers' timings). The turn stores its messages as it ends, so a read right at the finish can
 * still miss them: adopting that one would drop the answer just shown. It asks again, for about 4 s.
 */
async function resync(
  chat: Chat<ChatMessage>,
  api: Api,
  answerId: string,
  signal: AbortSignal,
): Promise<void> {
  for (let attempt = 0; attempt < 5 && !signal.aborted; attempt++) {
    if (attempt > 0) await sleep(250 * 2 ** (attempt - 1), signal);
    const stored = await api.messages(chat.id).catch(() => undefined);
    if (!stored?.some((m) => m.id === answerId)) continue;
    const live = new Map(chat.messages.map((m) => [m.id, m]));
    chat.messages = stored.map((m) => {
      const mine = live.get(m.id);
      return mine ? { ...m, metadata: { ...m.metadata, ...mine.metadata } } : m;
    });
    return;
  }
}

/** Ticks once a second while `active`, for countdowns. */
function useNow(active: boolean): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [active]);
  return now;
}

export function ChatView({
  id,
  initialMessages,
  resume,
  api,
  signer,
  onSettled,
  onStarted,
  live,
  activity,
}: ChatViewProps) {
  const [useRag, setUseRag] = useState(() => localStorage.getItem(RAG_KEY) !== 'off');
  const useRagRef = useRef(useRag);
  useRagRef.current = useRag;
  // Only offered when the deployment allows more than one model; the server's default otherwise.
  const [models, setModels] = useState<string[]>([]);
  const [picked, setPicked] = useState(() => localStorage.getItem(MODEL_KEY) ?? '');
  const model = models.includes(picked) ? picked : undefined;
  const modelRef = useRef(model);
  modelRef.current = model;
  useEffect(() => {
    let live = true;
    api.models().then(
      (ids) => live && setModels(ids),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [api]);
  const settledRef = useRef(onSettled);
  settledRef.current = onSettled;
  /** The running turn makes a new version (edit, regenerate): its end fetches the versions. */
  const branchingRef = useRef(false);

  // One Chat per conversation (the parent keys this component by id). The transport is the AI SDK's
  // own: it posts to /api/chat, parses the UI message stream and resumes with GET /api/chat/{id}/stream.
  const [chat] = useState(() => {
    const chat: Chat<ChatMessage> = new Chat<ChatMessage>({
      id,
      messages: initialMessages,
      transport: new ConversationTransport(
        {
          api: `${api.baseUrl}/api/chat`,
          headers: async () => ({ authorization: `Bearer ${await signer.token()}` }),
          body: () => ({
            use_rag: useRagRef.current,
            ...(modelRef.current ? { model: modelRef.current } : {}),
          }),
          // The server keeps the history: send only the newest message, not the whole conversation.
          // `parentId` places the message among the versions (an edit goes beside the question it edits).
          prepareSendMessagesRequest: ({ id: chatId, messages, body, trigger, messageId }) => ({
            body: {
              ...body,
              id: chatId,
              message: messages.at(-1),
              trigger,
              messageId,
              ...(trigger === 'submit-message' ? { parentId: parentIdFor(messages) } : {}),
            },
          }),
        },
        (messageId) => holdsFinishedAnswer(chat.messages, messageId),
      ),
      onFinish: ({ message }) => {
        settledRef.current();
        // An edit or a regeneration made a version: take the stored branch, which lists them.
        if (branchingRef.current) {
          branchingRef.current = false;
          void adoptVersions(chat, api);
          return;
        }
        // A reload in the middle of an answer reopens the conversation without the question being
        // answered (it was not stored yet): once the answer is complete, take the stored conversation.
        const at = chat.messages.findIndex((m) => m.id === message.id);
        if (at !== -1 && chat.messages[at - 1]?.role !== 'user')
          void resync(chat, api, message.id, lifetime.current.signal);
      },
    });
    return chat;
  });
  // At most one render per animation-frame-ish tick however fast tokens come (100 tokens/s and more): the
  // text is batched, the page never falls behind the stream.
  const { messages, status, error } = useChat<ChatMessage>({ chat, resume, throttle: UI_THROTTLE_MS });
  useEffect(() => () => void chat.stop(), [chat]);

  const [draft, setDraft] = useState('');
  const [stopping, setStopping] = useState(false);
  const [reconnecting, setReconnecting] = useState(false);
  const busy = status === 'submitted' || status === 'streaming';
  const problem = useMemo(() => (error ? describeProblem(error) : undefined), [error]);
  const now = useNow(problem?.retryAt !== undefined);
  const waitMs = problem?.retryAt !== undefined ? problem.retryAt - now : 0;
  const inputId = useId();
  const ragId = useId();
  const modelId = useId();

  // Follow the answer as it grows, unless the person scrolled up to read.
  const log = useRef<HTMLDivElement>(null);
  const following = useRef(true);
  useEffect(() => {
    const element = log.current;
    if (element && following.current && messages.length > 0) element.scrollTop = element.scrollHeight;
  }, [messages]);

  // Network lost: reattach to the running answer (GET …/stream), else adopt what the server stored, else
  // send the question again under the same id. Backs off 1, 2, 4 … 15 s, at once when the browser is
  // back online. One loop at a time, alive until it recovers (or the conversation is closed).
  const networkDown = error !== undefined && isNetworkFailure(error);
  const recovering = useRef(false);
  const lifetime = useRef(new AbortController());
  useEffect(() => {
    const controller = new AbortController();
    lifetime.current = controller;
    return () => controller.abort();
  }, []);
  useEffect(() => {
    if (!networkDown || recovering.current) return;
    recovering.current = true;
    setReconnecting(true);
    const signal = lifetime.current.signal;
    const recover = async (): Promise<boolean> => {
      await chat.resumeStream();
      if (failed(chat)) return !isNetworkFailure(chat.error);
      const last = chat.messages.at(-1);
      if (last?.role === 'assistant' && last.metadata?.stopReason) return true;
      const question = lastQuestion(chat);
      const stored = await api.messages(chat.id);
      const at = question ? (stored ?? []).findIndex((m) => m.id === question.id) : -1;
      if (stored && at !== -1 && stored[at + 1]?.role === 'assistant') {
        chat.messages = stored;
        settledRef.current();
        return true;
      }
      await sendAgain(chat);
      return !failed(chat) || !isNetworkFailure(chat.error);
    };
    (async () => {
      for (let attempt = 0; !signal.aborted; attempt++) {
        await sleep(Math.min(1000 * 2 ** attempt, 15_000), signal);
        if (signal.aborted) return;
        const done = await recover().catch((failure: unknown) => !isNetworkFailure(failure));
        if (done) return;
      }
    })().finally(() => {
      recovering.current = false;
      if (!signal.aborted) setReconnecting(false);
    });
  }, [networkDown, chat, api]);

  const input = useRef<HTMLTextAreaElement>(null);
  // The composer has the focus on load (on a phone, the keyboard waits for a tap).
  useEffect(() => {
    if (window.matchMedia('(pointer: fine)').matches) input.current?.focus();
  }, []);

  /** What was last sent, given back to the composer if the API refuses it (a 4xx other than a limit). */
  const sent = useRef('');
  const [files, setFiles] = useState<FileUIPart[]>([]);
  /** A turn asked from this tab, which the other tabs are told about once it streams. */
  const asking = useRef(false);
  const send = (text = draft.trim()) => {
    if (!text || busy || text.length > MAX_CHARS) return;
    sent.current = text;
    asking.current = true;
    setDraft('');
    setFiles([]);
    if (chat.messages.length === 0) onStarted();
    void chat.sendMessage(files.length > 0 ? { text, files } : { text });
  };

  // A refused question was never stored: take it out of the log and give it back to the composer.
  useEffect(() => {
    const text = sent.current;
    if (problem?.kind !== 'refused' || !text) return;
    sent.current = '';
    const question = chat.messages.at(-1);
    if (question?.role === 'user' && textOf(question) === text) chat.messages = chat.messages.slice(0, -1);
    setDraft((current) => current || text);
    input.current?.focus();
  }, [problem, chat]);

  /** Try again: the same question under its own id when it has no answer yet, else a new answer. */
  const retry = () => {
    asking.current = true;
    if (chat.messages.at(-1)?.role === 'user') void sendAgain(chat);
    else void chat.regenerate();
  };

  /** A 409: the answer is being written elsewhere (another tab or device): show it as it is written. */
  const follow = () => void followRunningTurn(chat, api);

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      send();
    }
  };

  /**
   * Stop: ask the server to stop the turn wherever it runs (it stores the partial answer and ends the
   * stream with the stop reason), let the last chunks arrive, then drop the connection.
   */
  const stop = async () => {
    setStopping(true);
    try {
      const running = await api.stop(chat.id).catch(() => false);
      const deadline = Date.now() + 2000;
      while (
        running &&
        Date.now() < deadline &&
        (chat.status === 'streaming' || chat.status === 'submitted')
      ) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await chat.stop();
      setStopping(false);
      settledRef.current();
    }
  };

  // Escape stops the answer being written (unless something else, like the phone drawer, took it).
  const stopRef = useRef(stop);
  stopRef.current = stop;
  const busyRef = useRef(busy);
  busyRef.current = busy;
  // Live in every tab: once a turn asked here streams, the other tabs showing this conversation follow it.
  useEffect(() => {
    if (status !== 'streaming' || !asking.current) return;
    asking.current = false;
    const question = lastQuestion(chat);
    if (question) {
      live.tell({ type: 'turn', sessionId: chat.id, question: { id: question.id, text: textOf(question) } });
    }
  }, [status, chat, live]);
  useEffect(
    () =>
      live.listen((news) => {
        if (news.type !== 'turn' || news.sessionId !== chat.id || busyRef.current) return;
        void followRunningTurn(chat, api, news.question);
      }),
    [live, chat, api],
  );
  // Another device asked (the list says the conversation changed): take what it stored, follow its answer.
  // Right after a turn this tab wrote or followed, the change is that turn's own: only what was stored.
  const activitySeen = useRef(activity);
  const quietUntil = useRef(0);
  useEffect(() => {
    if (!busy) quietUntil.current = Date.now() + 20_000;
  }, [busy]);
  useEffect(() => {
    if (activity === activitySeen.current) return;
    activitySeen.current = activity;
    if (busyRef.current) return;
    if (Date.now() < quietUntil.current) void adoptStored(chat, api);
    else void followRunningTurn(chat, api, undefined, 1);
  }, [activity, chat, api]);
  // A 409: another tab or device is answering here. Its answer is shown, and this question waits in the box.
  useEffect(() => {
    if (problem?.kind !== 'conflict') return;
    const text = sent.current;
    sent.current = '';
    const question = chat.messages.at(-1);
    if (text && question?.role === 'user' && textOf(question) === text)
      chat.messages = chat.messages.slice(0, -1);
    if (text) setDraft((current) => current || text);
    void followRunningTurn(chat, api, undefined, 8, false);
  }, [problem, chat, api]);

  useEffect(() => {
    const onKey = (event: globalThis.KeyboardEvent) => {
      if (event.key !== 'Escape' || event.defaultPrevented || !busyRef.current) return;
      event.preventDefault();
      void stopRef.current();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);

  const lastAnswer = messages.at(-1)?.role === 'assistant' ? messages.at(-1) : undefined;
  const regenerate = useMemo(
    () => () => {
      branchingRef.current = true;
      asking.current = true;
      void chat.regenerate();
    },
    [chat],
  );
  // Stable per message id, so a streaming answer does not render the messages before it again.
  const actionsFor = useMemo(() => {
    const made = new Map<string, MessageActions>();
    return (message: ChatMessage): MessageActions => {
      const known = made.get(message.id);
      if (known) return known;
      const actions: MessageActions = {
        onVersion: (versionId) => void showVersion(chat, api, versionId),
        onEdit: (text) => {
          branchingRef.current = true;
          void chat.sendMessage({ text, messageId: message.id });
        },
        onFeedback: (feedback) =>
          rateWithRetry(chat, api, message.metadata?.messageId ?? message.id, feedback),
      };
      made.set(message.id, actions);
      return actions;
    };
  }, [chat, api]);
  const continueAnswer = useMemo(() => () => void chat.sendMessage({ text: CONTINUE_PROMPT }), [chat]);
  const tooLong = draft.length > MAX_CHARS;
  const announce = busy ? 'Writing the answer…' : problem ? '' : lastAnswer ? 'Answer complete.' : '';

  return (
    <section className="chat" aria-label="Conversation">
      <div
        className="log"
        role="log"
        aria-busy={busy}
        aria-label="Messages"
        ref={log}
        onScroll={(event) => {
          const { scrollTop, scrollHeight, clientHeight } = event.currentTarget;
          following.current = scrollHeight - scrollTop - clientHeight < 80;
        }}
      >
        {messages.length === 0 ? (
          <div className="empty">
            <p>Ask about budgeting, saving, retirement accounts, credit or taxes.</p>
            <ul className="suggestions" aria-label="Suggested questions">
              {SUGGESTIONS.map((suggestion) => (
                <li key={suggestion}>
                  <button type="button" onClick={() => send(suggestion)} disabled={busy || reconnecting}>
                    {suggestion}
                  </button>
                </li>
              ))}
            </ul>
          </div>
        ) : null}
        {messages.map((message, index) => (
          <MessageView
            // The stored id: adopting the stored conversation then keeps each answer's component (an open
            // feedback form, a copied state) instead of remounting it under a new key.
            key={message.metadata?.messageId ?? message.id}
            message={message}
            streaming={busy && index === messages.length - 1 && message.role === 'assistant'}
            onRegenerate={!busy && !reconnecting && message === lastAnswer ? regenerate : undefined}
            actions={
              busy || reconnecting
                ? undefined
                : message === lastAnswer && message.metadata?.stopReason === 'stopped'
                  ? { ...actionsFor(message), onContinue: continueAnswer }
                  : actionsFor(message)
            }
          />
        ))}
      </div>
      <p className="visually-hidden" role="status">
        {announce}
      </p>
      {reconnecting || problem ? (
        <div className={`problem ${problem?.kind ?? 'network'}`} role="alert">
          <p>
            {reconnecting ? 'The connection was lost. Retrying when it is back…' : problem?.message}
            {!reconnecting && problem?.kind === 'refused' ? ' Your message is back in the box below.' : null}
            {problem?.retryAt !== undefined && !reconnecting
              ? waitMs > 0
                ? ` You can send again in ${formatWait(waitMs)}.`
                : ' You can send again now.'
              : null}
          </p>
          {!reconnecting && problem?.kind === 'limit' ? (
            <button type="button" disabled={waitMs > 0} onClick={() => void sendAgain(chat)}>
              Send again
            </button>
          ) : null}
          {!reconnecting &&
          (problem?.kind === 'busy' || problem?.kind === 'other' || problem?.kind === 'auth') ? (
            <button type="button" onClick={retry}>
              Try again
            </button>
          ) : null}
          {!reconnecting && problem?.kind === 'conflict' ? (
            <button type="button" onClick={follow}>
              Follow that answer
            </button>
          ) : null}
        </div>
      ) : null}
      <form
        className="composer"
        onSubmit={(event) => {
          event.preventDefault();
          send();
        }}
      >
        <label htmlFor={inputId} className="visually-hidden">
          Message
        </label>
        <textarea
          id={inputId}
          ref={input}
          value={draft}
          rows={2}
          placeholder="Ask a question (Enter sends, Shift+Enter for a new line)"
          onChange={(event) => setDraft(event.target.value)}
          onKeyDown={onKeyDown}
          aria-describedby={`${inputId}-hint ${inputId}-count`}
          aria-invalid={tooLong}
        />
        <AttachmentList
          files={files}
          onRemove={(index) => setFiles((all) => all.filter((_, i) => i !== index))}
        />
        <span id={`${inputId}-hint`} className="visually-hidden">
          Enter sends, Shift+Enter starts a new line, Escape stops an answer.
        </span>
        <div className="controls">
          <AttachButton
            count={files.length}
            disabled={busy}
            onAdd={(added) => setFiles((all) => [...all, ...added])}
          />
          <label className="switch" htmlFor={ragId}>
            <input
              id={ragId}
              type="checkbox"
              role="switch"
              aria-checked={useRag}
              checked={useRag}
              onChange={(event) => {
                setUseRag(event.target.checked);
                localStorage.setItem(RAG_KEY, event.target.checked ? 'on' : 'off');
              }}
            />
            Knowledge base
          </label>
          {models.length > 1 ? (
            <label className="model-picker" htmlFor={modelId}>
              Model
              <select
                id={modelId}
                value={model ?? models[0]}
                onChange={(event) => {
                  setPicked(event.target.value);
                  localStorage.setItem(MODEL_KEY, event.target.value);
                }}
              >
                {models.map((id) => (
                  <option key={id} value={id}>
                    {id}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
          <span
            id={`${inputId}-count`}
            className={`counter${tooLong ? ' over' : ''}`}
            aria-live={tooLong ? 'polite' : 'off'}
          >
            {tooLong
              ? `${count.format(draft.length - MAX_CHARS)} characters too long (${count.format(draft.length)} of ${count.format(MAX_CHARS)})`
              : draft.length > MAX_CHARS * 0.8
                ? `${count.format(draft.length)} of ${count.format(MAX_CHARS)} characters`
                : ''}
          </span>
          {busy ? (
            <button type="button" className="stop" onClick={() => void stop()} disabled={stopping}>
              {stopping ? 'Stopping…' : 'Stop'}
            </button>
          ) : (
            <button type="submit" className="send" disabled={!draft.trim() || tooLong || reconnecting}>
              Send
            </button>
          )}
        </div>
      </form>
    </section>
  );
}
