import type { ChatMessage } from './messages.ts';

/**
 * Versions of a conversation as a tree: every message names the message it follows (`parentId`, `null`
 * for the first one). An edited question is a sibling of the question it edits, a regenerated answer a
 * sibling of the answer it replaces. The active branch needs no stored pointer: it is the path to the
 * newest message (the newest write is the branch the person works on), and a turn names where it
 * continues, so picking an older version and going on from it makes that branch the newest.
 */

/**
 * Each message's parent. A message stored before versions existed has no `parentId`: it follows the
 * message before it, except a regenerated answer, which shares the parent of the answer it replaced.
 */
export function parentsOf(messages: readonly ChatMessage[]): Map<string, string | undefined> {
  const parents = new Map<string, string | undefined>();
  let previous: string | undefined;
  for (const m of messages) {
    let parent: string | undefined;
    if (m.parentId !== undefined) parent = m.parentId ?? undefined;
    else if (m.replaces !== undefined && parents.has(m.replaces)) parent = parents.get(m.replaces);
    else parent = previous;
    parents.set(m.messageId, parent);
    previous = m.messageId;
  }
  return parents;
}

/** The messages from the first one down to `id` (included), oldest first; empty for an unknown id. */
function pathTo(messages: readonly ChatMessage[], id: string | undefined): ChatMessage[] {
  const byId = new Map(messages.map((m) => [m.messageId, m]));
  const parents = parentsOf(messages);
  const path: ChatMessage[] = [];
  // Bounded by the list's length: a malformed cycle can never loop.
  for (let at = id; at !== undefined && path.length < messages.length; at = parents.get(at)) {
    const message = byId.get(at);
    if (!message) break;
    path.push(message);
  }
  return path.reverse();
}

/**
 * The branch to show: through `through` (any message of a version) down to the newest message after
 * it; without `through` (or with an unknown id), the branch of the newest message.
 */
export function activeBranch(messages: readonly ChatMessage[], through?: string): ChatMessage[] {
  const newest = messages.at(-1)?.messageId;
  if (through === undefined || !messages.some((m) => m.messageId === through))
    return pathTo(messages, newest);
  const parents = parentsOf(messages);
  const descends = (id: string) => {
    for (let at: string | undefined = id, hops = 0; at !== undefined && hops <= messages.length; hops++) {
      if (at === through) return true;
      at = parents.get(at);
    }
    return false;
  };
  const leaf = messages.findLast((m) => descends(m.messageId));
  return pathTo(messages, leaf?.messageId ?? through);
}

/** Per message of the branch with other versions: all its versions' ids (same parent, same role), oldest first. */
export function versionsOn(
  messages: readonly ChatMessage[],
  branch: readonly ChatMessage[],
): Map<string, string[]> {
  const parents = parentsOf(messages);
  const versions = new Map<string, string[]>();
  for (const message of branch) {
    const parent = parents.get(message.messageId);
    const siblings = messages
      .filter((m) => m.role === message.role && parents.get(m.messageId) === parent)
      .map((m) => m.messageId);
    if (siblings.length > 1) versions.set(message.messageId, siblings);
  }
  return versions;
}

/** A reference from a client: a stored message id, or a client's id for one of its questions (newest wins). */
function find(messages: readonly ChatMessage[], ref: string): ChatMessage | undefined {
  return messages.findLast((m) => m.messageId === ref || (m.role === 'user' && m.clientMessageId === ref));
}

export interface Placement {
  /** What the new question follows (`null`: it starts the conversation). */
  parentId: string | null;
  /** The branch up to that point: the history the model sees. */
  history: ChatMessage[];
}

/**
 * Where a new question goes: after `parentRef` when the client named it (`null`: at the start), else
 * beside an earlier question with the same client id (an edit that did not say where), else after the
 * newest message.
 */
export function placeQuestion(
  messages: readonly ChatMessage[],
  request: { parentRef?: string | null | undefined; clientMessageId?: string | undefined },
): Placement {
  const { parentRef, clientMessageId } = request;
  if (parentRef === null) return { parentId: null, history: [] };
  let parentId: string | null | undefined;
  if (parentRef !== undefined) parentId = find(messages, parentRef)?.messageId;
  if (parentId === undefined && clientMessageId !== undefined) {
    const edited = messages.findLast((m) => m.role === 'user' && m.clientMessageId === clientMessageId);
    if (edited) parentId = parentsOf(messages).get(edited.messageId) ?? null;
  }
  if (parentId === undefined) parentId = messages.at(-1)?.messageId ?? null;
  return { parentId, history: parentId === null ? [] : pathTo(messages, parentId) };
}

export interface Regeneration {
  question: ChatMessage;
  /** The branch before the question: the history the model sees. */
  before: ChatMessage[];
  /** The answer the new one is a version of, if the question had one. */
  replaces: string | undefined;
}

/**
 * The question a regeneration answers again: the one `answerRef` answered when that answer is known,
 * else the last question of the active branch. `undefined` when there is no question.
 */
export function regenerationOf(
  messages: readonly ChatMessage[],
  answerRef: string | undefined,
): Regeneration | undefined {
  const answer = answerRef === undefined ? undefined : find(messages, answerRef);
  const branch = answer ? pathTo(messages, answer.messageId) : activeBranch(messages);
  const index = branch.findLastIndex((m) => m.role === 'user');
  const question = branch[index];
  if (!question) return undefined;
  const replaced = answer ?? branch.slice(index + 1).findLast((m) => m.role === 'assistant');
  return { question, before: branch.slice(0, index), replaces: replaced?.messageId };
}
