import type { AttachmentContent, ChatMessage, Passage, UserProfile } from './messages.ts';
import type { ModelRequest } from './ports.ts';

/** Bedrock's stop reason when a guardrail replaced the answer. */
const GUARDRAIL_INTERVENED = 'guardrail_intervened';

const BASE_INSTRUCTIONS =
  'You are a helpful personal-finance education assistant. Answer clearly and briefly. ' +
  'When sources are given, ground the answer in them and say when they do not cover the question. ' +
  'Cite a source you use by its id in square brackets, like [1], right after the sentence that uses it. ' +
  'You give education, not individual financial advice.';

const sourceBlocks = (passages: Passage[]) =>
  passages.map((p, i) => `<source id="${i + 1}" title="${p.title}">\n${p.text}\n</source>`);

/**
 * The system prompt: the instructions and the user's profile, then the passages when any are given.
 * `buildPrompt` keeps the passages out of it, so that it stays the same from one question to the next.
 */
export function buildSystemPrompt(profile: UserProfile | undefined, passages: Passage[]): string {
  const parts = [BASE_INSTRUCTIONS];
  if (profile?.name) parts.push(`The user's name is ${profile.name}.`);
  const preferences = Object.entries(profile?.preferences ?? {});
  if (preferences.length > 0) {
    parts.push(`User preferences: ${preferences.map(([k, v]) => `${k}: ${v}`).join('; ')}.`);
  }
  if (passages.length > 0) parts.push('Sources:', ...sourceBlocks(passages));
  return parts.join('\n\n');
}

/** A turn of the history: a stored message, or one of a stateless client's turns (no ids). */
type PromptTurn = Pick<ChatMessage, 'role' | 'content'> &
  Partial<Pick<ChatMessage, 'messageId' | 'replaces' | 'stopReason' | 'attachments'>> & {
    /** The turn's attachments as sent to the model (a stateless client's, or read back from the store). */
    files?: AttachmentContent[] | undefined;
  };

/** Earlier attachments left out of the prompt (over the history budget) are named, so the model knows. */
function withOmittedNote(turn: PromptTurn, files: AttachmentContent[]): string {
  const omitted = (turn.attachments ?? []).filter(
    (a) => !files.some((f) => f.name === a.name && f.bytes.length === a.size),
  );
  if (omitted.length === 0) return turn.content;
  const names = omitted.map((a) => `${a.name} (${a.mediaType})`).join(', ');
  return `${turn.content}\n\n[Attached earlier, not shown again: ${names}]`;
}

/**
 * Makes stored history valid for the Converse API before the new user message is appended: it must
 * start with a user turn and roles must alternate, so leading assistant turns are dropped and runs
 * of one role (a turn whose answer failed) are merged.
 */
export function toConverseMessages(
  history: PromptTurn[],
  message: string,
  questionFiles: AttachmentContent[] = [],
  loadedFiles: ReadonlyMap<string, AttachmentContent[]> = new Map(),
): ModelRequest['messages'] {
  const turns: ModelRequest['messages'] = [];
  // A regenerated answer replaces the earlier one: only the latest is part of the conversation.
  const replaced = new Set(history.flatMap((m) => (m.replaces ? [m.replaces] : [])));
  const said = history.filter((m) => m.messageId === undefined || !replaced.has(m.messageId));
  const question: PromptTurn = { role: 'user', content: message, files: questionFiles };
  for (const entry of [...said, question]) {
    if (!speaks(entry, turns.length === 0)) continue;
    const files = filesOf(entry, loadedFiles);
    appendTurn(turns, entry.role, entry === question ? entry.content : withOmittedNote(entry, files), files);
  }
  return turns;
}

/** Blank turns, what a guardrail blocked (never fed back as if said) and a leading answer are left out. */
const speaks = (entry: PromptTurn, first: boolean) =>
  entry.content.trim() !== '' &&
  entry.stopReason !== GUARDRAIL_INTERVENED &&
  !(first && entry.role !== 'user');

const filesOf = (entry: PromptTurn, loaded: ReadonlyMap<string, AttachmentContent[]>) =>
  entry.files ?? (entry.messageId ? loaded.get(entry.messageId) : undefined) ?? [];

/** Appends a turn, merged into the last one when the role repeats (Converse wants them alternating). */
function appendTurn(
  turns: ModelRequest['messages'],
  role: 'user' | 'assistant',
  content: string,
  files: AttachmentContent[],
) {
  const last = turns.at(-1);
  if (last?.role !== role) {
    turns.push({ role, content, ...(files.length > 0 ? { files } : {}) });
    return;
  }
  last.content = `${last.content}\n\n${content}`;
  if (files.length > 0) last.files = [...(last.files ?? []), ...files];
}

/** FNV-1a, 32 bits: a stable, well-spread number from a message id. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * The history the prompt shows. While the conversation fits in the window (fewer than `historyLimit`
 * messages were loaded) that is all of it, so the prompt's start never changes. Once the window is full
 * it slides by one turn per turn, and a prompt starting one turn later every time could never reuse a
 * cached prefix: the prompt then starts at the oldest "anchor" user message in the window instead, and
 * anchors (about one user message in `historyLimit / 8`, chosen by a hash of the message id, so every
 * turn picks the same ones) move the start in steps of several turns. The price: on average a few of the
 * oldest messages in the window are left out (never more than half of it).
 */
export function stableHistory(history: ChatMessage[], historyLimit: number | undefined): ChatMessage[] {
  if (historyLimit === undefined || history.length < historyLimit) return history;
  const stride = Math.floor(historyLimit / 8);
  if (stride <= 1) return history;
  const start = history.findIndex((m) => m.role === 'user' && fnv1a(m.messageId) % stride === 0);
  // No anchor in the older half: keep the context, give up the cache hit.
  return start <= 0 || start > history.length / 2 ? history : history.slice(start);
}

/** The new user turn: the retrieved passages first, then the question. */
function userTurn(passages: Passage[], question: string): string {
  if (passages.length === 0) return question;
  return `<sources>\n${sourceBlocks(passages).join('\n')}\n</sources>\n\n${question}`;
}

export interface PromptInput {
  profile: UserProfile | undefined;
  passages: Passage[];
  /** The stored conversation before the question, oldest first (at most `historyLimit` messages). */
  history: ChatMessage[];
  question: string;
  /** How many messages the history was loaded with; lets the prompt tell a full, sliding window. */
  historyLimit?: number;
  /** The question's attachments. */
  questionFiles?: AttachmentContent[];
  /** Earlier attachments read back for the prompt, by message id (within the history budget). */
  historyFiles?: ReadonlyMap<string, AttachmentContent[]>;
}

/**
 * The prompt in the order that lets a model's prompt cache pay: what stays the same for a user first
 * (instructions and profile, the system prompt), then the conversation so far (the same prefix again on
 * the next turn, with one more turn at its end), then what is new every time: the retrieved passages and
 * the question, in the last user turn. The model adapter puts cache points at the end of the system
 * prompt and of the history when those prefixes are long enough for the model.
 */
export function buildPrompt(input: PromptInput): Pick<ModelRequest, 'system' | 'messages'> {
  return {
    system: buildSystemPrompt(input.profile, []),
    messages: toConverseMessages(
      stableHistory(input.history, input.historyLimit),
      userTurn(input.passages, input.question),
      input.questionFiles,
      input.historyFiles,
    ),
  };
}

export interface TranscriptPromptInput {
  /** The client's system and developer messages. */
  instructions: string[];
  /** The client's turns before the question, oldest first (with the files they carried). */
  turns: Array<{ role: 'user' | 'assistant'; content: string; files?: AttachmentContent[] }>;
  passages: Passage[];
  question: string;
  questionFiles?: AttachmentContent[];
}

/**
 * A stateless turn's prompt: the deployment's instructions stay first (the client's cannot remove them),
 * the client's own instructions follow, then the client's turns and the question with its passages.
 */
export function buildTranscriptPrompt(
  input: TranscriptPromptInput,
): Pick<ModelRequest, 'system' | 'messages'> {
  const instructions = input.instructions.filter((text) => text.trim() !== '');
  return {
    system: [buildSystemPrompt(undefined, []), ...instructions].join('\n\n'),
    messages: toConverseMessages(input.turns, userTurn(input.passages, input.question), input.questionFiles),
  };
}
