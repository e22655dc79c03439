import * as z from 'zod/mini';
import type { SessionSummary as SessionJson, SessionPage, StoredMessage } from '../../contracts/api.ts';
import { activeBranch, parentsOf, versionsOn } from '../../core/branches.ts';
import {
  type ConversationArchive,
  decodeCursor,
  encodeCursor,
  type SessionSummary,
} from '../../core/conversations.ts';
import { dependencyUnavailable, invalidField, RequestRejected } from '../../core/errors.ts';
import { checkRoute, type UserLimits } from '../../core/limits.ts';
import { type ChatMessage, type Feedback, FeedbackSchema } from '../../core/messages.ts';
import type { AttachmentStore } from '../../core/ports.ts';
import { parseJsonBody } from '../../core/request.ts';
import { queryTerms } from '../../core/search-terms.ts';
import { type Invocation, json, noContent, type RouteHandler, readJsonBody } from '../invocation.ts';
import { sourcePart } from '../wire/ai-sdk.ts';

/** What the conversation routes need: the archive, the cached history, forgetting cached keys, route limits. */
export interface ConversationRouteDeps {
  archive: ConversationArchive;
  /** Per-user budgets of the costly routes (list, delete, erase). */
  limits: Pick<UserLimits, 'checkRoute'>;
  /** The session's cached newest messages (at most `historyLimit`), or `undefined` on a miss or failure. */
  cachedHistory(userId: string, sessionId: string): Promise<ChatMessage[] | undefined>;
  historyLimit: number;
  /**
   * Cache and turn keys of a deleted session or an erased user, by exact keys (never a scan), leaving a
   * marker that refuses older writes; stored data goes through the archive. Rejects when Redis is down,
   * and the route then deletes nothing; resolves at once when no cache is configured.
   */
  forgetSession(userId: string, sessionId: string): Promise<void>;
  forgetUser(userId: string): Promise<void>;
  /** The stored attachments of a deleted session or an erased user (S3 objects), when attachments are kept. */
  attachments?: Pick<AttachmentStore, 'get' | 'deleteSession' | 'deleteUser'> | undefined;
  /** Drops the session's cached history, so the next read takes the stored one (with a new rating). */
  dropCachedHistory(userId: string, sessionId: string): Promise<void>;
  /** Counts a rating given (a metric the dashboard charts as a rate). */
  countFeedback(rating: Feedback['rating']): void;
}

const MAX_TITLE_CHARS = 120;
const renameSchema = z.strictObject({
  title: z.string('title must be a string').check(
    z.refine((t) => t.trim().length > 0, 'title must not be blank'),
    z.maxLength(MAX_TITLE_CHARS, `title must be at most ${MAX_TITLE_CHARS} characters`),
  ),
});

const notFound = () => new RequestRejected('not_found', 'not_found', 'No such conversation.');

/** `limit` from the query string: 1..max, default `fallback`; anything else is a 400 naming it. */
function limitFrom(inv: Invocation, fallback: number, max: number): number {
  const raw = inv.event.queryStringParameters?.limit;
  if (raw === undefined) return fallback;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw invalidField('limit', `limit must be a whole number from 1 to ${max}.`);
  }
  return Number(raw);
}

const sessionJson = (s: SessionSummary): SessionJson => ({
  id: s.sessionId,
  title: s.title,
  title_source: s.titleSource,
  created_at: s.createdAt,
  updated_at: s.updatedAt,
  message_count: s.messageCount,
});

/** What a message adds on a branch: the message it follows and its versions. */
interface BranchFacts {
  parentId: string | null | undefined;
  versions: string[] | undefined;
}

const feedbackJson = (f: NonNullable<ChatMessage['feedback']>) => ({
  rating: f.rating,
  ...(f.reason ? { reason: f.reason } : {}),
  ...(f.updatedAt ? { updated_at: f.updatedAt } : {}),
});

const messageJson = (m: ChatMessage, branch?: BranchFacts): StoredMessage => ({
  id: m.messageId,
  role: m.role,
  text: m.content,
  created_at: m.createdAt,
  ...(m.clientMessageId ? { client_message_id: m.clientMessageId } : {}),
  ...(m.sources ? { sources: m.sources } : {}),
  ...(m.stopReason ? { stop_reason: m.stopReason } : {}),
  ...(m.usage ? { usage: m.usage } : {}),
  ...(m.attachments?.length ? { attachments: m.attachments.map(attachmentJson) } : {}),
  ...(m.model ? { model: m.model } : {}),
  ...(branch?.parentId !== undefined ? { parent_id: branch.parentId } : {}),
  ...(branch?.versions ? { versions: branch.versions } : {}),
  ...(m.feedback ? { feedback: feedbackJson(m.feedback) } : {}),
});

/** What a reopened message shows of its files: names, types and sizes (the bytes stay in the store). */
const attachmentJson = (a: NonNullable<ChatMessage['attachments']>[number]) => ({
  name: a.name,
  media_type: a.mediaType,
  size: a.size,
});

/** Images up to this size come back inline (data URLs) in the AI SDK format, so a reload shows thumbnails. */
const INLINE_IMAGE_BYTES = 1_000_000;

/** The page's inline images, read from the store within one deadline; what is missing shows as a chip. */
async function inlineImages(
  store: Pick<AttachmentStore, 'get'> | undefined,
  messages: ChatMessage[],
): Promise<Map<string, string>> {
  const refs = messages
    .flatMap((m) => m.attachments ?? [])
    .filter((a) => a.mediaType.startsWith('image/') && a.size <= INLINE_IMAGE_BYTES);
  const urls = new Map<string, string>();
  if (!store || refs.length === 0) return urls;
  const signal = AbortSignal.timeout(3000);
  await Promise.all(
    refs.map(async (ref) => {
      const bytes = await store.get(ref, signal).catch(() => undefined);
      if (bytes) urls.set(ref.key, `data:${ref.mediaType};base64,${Buffer.from(bytes).toString('base64')}`);
    }),
  );
  return urls;
}

/** A stored file as a `file` part: inline when it was read, else an empty URL (the page shows a chip). */
const filePart = (a: NonNullable<ChatMessage['attachments']>[number], inline: Map<string, string>) => ({
  type: 'file',
  mediaType: a.mediaType,
  filename: a.name,
  url: inline.get(a.key) ?? '',
});

/** `UIMessage`s ready to be `useChat`'s initial messages: text and source parts, ids as the stream gave them. */
function uiMessage(m: ChatMessage, branch?: BranchFacts, inline: Map<string, string> = new Map()) {
  // The same parts the stream gave, so a reopened answer looks as it did while it streamed.
  const sources = (m.sources ?? []).map(sourcePart);
  return {
    id: m.role === 'user' ? (m.clientMessageId ?? m.messageId) : m.messageId,
    role: m.role,
    parts: [
      ...(m.role === 'assistant' ? [{ type: 'step-start' }] : []),
      ...sources,
      ...(m.attachments ?? []).map((a) => filePart(a, inline)),
      { type: 'text', text: m.content },
    ],
    metadata: {
      createdAt: m.createdAt,
      messageId: m.messageId,
      ...(m.stopReason ? { stopReason: m.stopReason } : {}),
      ...(m.usage ? { usage: m.usage } : {}),
      ...(branch?.versions ? { versions: branch.versions } : {}),
      ...(m.feedback ? { feedback: feedbackJson(m.feedback) } : {}),
    },
  };
}

/**
 * Redis first: its marker refuses every later cache and journal write of older turns, and stops a running
 * one. A delete that cannot set it (Redis unreachable, or the circuit open: refused at once) deletes
 * nothing and answers 503: a table-only delete would leave the cached history readable, and feeding the
 * next prompt, until it expires. The client's retry then does the whole job. Without a cache configured,
 * `forgetCached` has nothing to mark and resolves.
 */
async function forgetEverywhere(forgetCached: () => Promise<void>, deleteStored: () => Promise<void>) {
  try {
    await forgetCached();
  } catch {
    throw dependencyUnavailable(
      'cache_unavailable',
      'The cache could not be cleared, so nothing was deleted. Send the same request again.',
    );
  }
  await deleteStored();
  return noContent();
}

type MessagePage = { messages: ChatMessage[]; more: boolean };

/** A stored message id (UUIDv7, as the turn minted it): anything else names no message. */
const STORED_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

const feedbackSchema = FeedbackSchema;
const noSuchAnswer = () =>
  new RequestRejected('not_found', 'not_found', 'No such answer in this conversation.');

/** Where a page of messages starts: before a message (a cursor), on the branch through `leaf`. */
function positionOf(inv: Invocation) {
  const query = inv.event.queryStringParameters ?? {};
  const cursor = decodeCursor(query.cursor, ['before', 'leaf']);
  const leaf = cursor?.leaf || query.leaf;
  if (leaf !== undefined && !STORED_ID.test(leaf)) throw invalidField('leaf', 'leaf must be a message id.');
  return { before: cursor?.before, leaf };
}

/**
 * The branch a page shows, with each message's parent and versions. `leaf` picks the branch through that
 * message (a version); an older page continues the branch from where the newer page's left off.
 */
function branchPage(page: MessagePage, through: string | undefined) {
  const branch = activeBranch(page.messages, through);
  const versions = versionsOn(page.messages, branch);
  const parents = parentsOf(page.messages);
  const facts = (m: ChatMessage): BranchFacts => ({
    parentId: m.parentId === undefined ? parents.get(m.messageId) : m.parentId,
    versions: versions.get(m.messageId),
  });
  return { branch, facts, continuesAt: branch[0] ? facts(branch[0]).parentId : undefined };
}

export function conversationRoutes(deps: ConversationRouteDeps) {
  const { archive } = deps;

  /** Newest activity first; with `q`, only the conversations whose messages or title hold its words. */
  const listSessions: RouteHandler = async (inv) => {
    const { q, cursor } = inv.event.queryStringParameters ?? {};
    const terms = q === undefined ? undefined : queryTerms(q);
    await checkRoute(deps.limits, inv.userId, terms ? 'search' : 'list');
    const limit = limitFrom(inv, 20, 100);
    const { sessions, next } = terms
      ? await archive.searchSessions(inv.userId, terms, limit, cursor)
      : await archive.listSessions(inv.userId, limit, cursor);
    const page: SessionPage = { sessions: sessions.map(sessionJson), next_cursor: next ?? null };
    return json(200, page);
  };

  const getSession: RouteHandler = async (inv, sessionId) => {
    const session = await archive.getSession(inv.userId, sessionId);
    if (!session) throw notFound();
    return json(200, sessionJson(session));
  };

  /**
   * The newest page from the cached history when it holds it (a turn just answered is there before the
   * consumer stored it): the cache keeps the newest `historyLimit` messages, so a shorter list is the
   * whole conversation.
   */
  async function newestFromCache(
    inv: Invocation,
    sessionId: string,
    limit: number,
  ): Promise<MessagePage | undefined> {
    const history = await deps.cachedHistory(inv.userId, sessionId);
    if (!history || history.length === 0) return undefined;
    if (history.length < deps.historyLimit || history.length >= limit) {
      return { messages: history.slice(-limit), more: history.length >= deps.historyLimit };
    }
    return undefined;
  }

  async function fromArchive(inv: Invocation, sessionId: string, limit: number, before: string | undefined) {
    const page = await archive.listMessages(inv.userId, sessionId, limit, before);
    if (page.messages.length === 0 && !before && !page.sessionFound) throw notFound();
    return page;
  }

  /** Newest first from the cache when it holds them, else from DynamoDB; older pages always from DynamoDB. */
  const listMessages: RouteHandler = async (inv, sessionId) => {
    const limit = limitFrom(inv, 50, 200);
    const format = inv.event.queryStringParameters?.format;
    if (format !== undefined && format !== 'ai-sdk')
      throw invalidField('format', 'format must be ai-sdk when given.');
    const { before, leaf } = positionOf(inv);
    const page =
      (before === undefined ? await newestFromCache(inv, sessionId, limit) : undefined) ??
      (await fromArchive(inv, sessionId, limit, before));
    const { branch, facts, continuesAt } = branchPage(page, leaf);
    const oldest = page.messages[0]?.messageId;
    const next_cursor =
      page.more && oldest ? encodeCursor({ before: oldest, leaf: continuesAt ?? '' }) : null;
    if (format === 'ai-sdk') {
      const inline = await inlineImages(deps.attachments, branch);
      return json(200, { messages: branch.map((m) => uiMessage(m, facts(m), inline)), next_cursor });
    }
    return json(200, { messages: branch.map((m) => messageJson(m, facts(m))), next_cursor });
  };

  const renameSession: RouteHandler = async (inv, sessionId) => {
    const { title } = parseJsonBody(readJsonBody(inv.event, 4096), renameSchema);
    const session = await archive.renameSession(inv.userId, sessionId, title.trim());
    if (!session) throw notFound();
    return json(200, sessionJson(session));
  };

  const deleteSession: RouteHandler = async (inv, sessionId) => {
    await checkRoute(deps.limits, inv.userId, 'delete');
    return forgetEverywhere(
      () => deps.forgetSession(inv.userId, sessionId),
      async () => {
        await archive.deleteSession(inv.userId, sessionId);
        await deps.attachments?.deleteSession(inv.userId, sessionId);
      },
    );
  };

  const eraseUser: RouteHandler = async (inv) => {
    await checkRoute(deps.limits, inv.userId, 'erase');
    return forgetEverywhere(
      () => deps.forgetUser(inv.userId),
      async () => {
        await archive.eraseUser(inv.userId);
        await deps.attachments?.deleteUser(inv.userId);
      },
    );
  };

  /** `<session id>/<message id>` from the path; a message id the turn did not mint names no answer. */
  const answerOf = (ids: string) => {
    const [sessionId = '', messageId = ''] = ids.split('/');
    if (!STORED_ID.test(messageId)) throw noSuchAnswer();
    return { sessionId, messageId };
  };

  /** Stored on the answer's item (only an answer of the caller's own conversation), then counted. */
  const rate = async (inv: Invocation, ids: string, feedback: Feedback | undefined) => {
    const { sessionId, messageId } = answerOf(ids);
    const stored = await archive.setFeedback(inv.userId, sessionId, messageId, feedback);
    if (!stored) throw noSuchAnswer();
    await deps.dropCachedHistory(inv.userId, sessionId).catch(() => undefined);
    return stored;
  };

  const putFeedback: RouteHandler = async (inv, ids) => {
    const body = parseJsonBody(readJsonBody(inv.event, 4096), feedbackSchema);
    const reason = body.reason?.trim();
    const feedback: Feedback = {
      rating: body.rating,
      ...(reason ? { reason } : {}),
      updatedAt: new Date().toISOString(),
    };
    const stored = await rate(inv, ids, feedback);
    deps.countFeedback(feedback.rating);
    return json(200, { id: stored.messageId, feedback: feedbackJson(feedback) });
  };

  const deleteFeedback: RouteHandler = async (inv, ids) => {
    await rate(inv, ids, undefined);
    return noContent();
  };

  return {
    listSessions,
    getSession,
    listMessages,
    renameSession,
    deleteSession,
    eraseUser,
    putFeedback,
    deleteFeedback,
  };
}
