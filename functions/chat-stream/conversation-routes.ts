import * as z from 'zod/mini';
import { errorName } from '../core/background-writes.ts';
import {
  type ConversationArchive,
  decodeCursor,
  encodeCursor,
  type SessionSummary,
  visibleMessages,
} from '../core/conversations.ts';
import { RequestRejected } from '../core/errors.ts';
import type { ChatMessage } from '../core/messages.ts';
import { parseJsonBody } from '../core/request.ts';
import { sourcePart } from './ai-sdk-stream.ts';
import { HttpError, readJsonBody } from './http-edge.ts';
import type { Invocation, RouteResponse } from './turn-routes.ts';

const MAX_TITLE_CHARS = 120;
const renameSchema = z.strictObject({
  title: z.string('title must be a string').check(
    z.refine((t) => t.trim().length > 0, 'title must not be blank'),
    z.maxLength(MAX_TITLE_CHARS, `title must be at most ${MAX_TITLE_CHARS} characters`),
  ),
});

const json = (statusCode: number, body: unknown): RouteResponse => ({
  statusCode,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});
const noContent = (): RouteResponse => ({ statusCode: 204, headers: {}, body: '' });
const notFound = () => new RequestRejected('not_found', 'not_found', 'No such conversation.');

/** `limit` from the query string: 1..max, default `fallback`; anything else is a 400 naming it. */
function limitFrom(inv: Invocation, fallback: number, max: number): number {
  const raw = inv.event.queryStringParameters?.limit;
  if (raw === undefined) return fallback;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    throw new HttpError(400, 'invalid_request', `limit must be a whole number from 1 to ${max}.`, {
      details: { field: 'limit' },
    });
  }
  return Number(raw);
}

const sessionJson = (s: SessionSummary) => ({
  id: s.sessionId,
  title: s.title,
  title_source: s.titleSource,
  created_at: s.createdAt,
  updated_at: s.updatedAt,
  message_count: s.messageCount,
});

const messageJson = (m: ChatMessage) => ({
  id: m.messageId,
  role: m.role,
  text: m.content,
  created_at: m.createdAt,
  ...(m.clientMessageId ? { client_message_id: m.clientMessageId } : {}),
  ...(m.sources ? { sources: m.sources } : {}),
  ...(m.stopReason ? { stop_reason: m.stopReason } : {}),
  ...(m.usage ? { usage: m.usage } : {}),
});

/** `UIMessage`s ready to be `useChat`'s initial messages: text and source parts, ids as the stream gave them. */
function uiMessage(m: ChatMessage) {
  // The same parts the stream gave, so a reopened answer looks as it did while it streamed.
  const sources = (m.sources ?? []).map(sourcePart);
  return {
    id: m.role === 'user' ? (m.clientMessageId ?? m.messageId) : m.messageId,
    role: m.role,
    parts: [
      ...(m.role === 'assistant' ? [{ type: 'step-start' }] : []),
      ...sources,
      { type: 'text', text: m.content },
    ],
    metadata: {
      createdAt: m.createdAt,
      ...(m.stopReason ? { stopReason: m.stopReason } : {}),
      ...(m.usage ? { usage: m.usage } : {}),
    },
  };
}

function archiveOf(inv: Invocation): ConversationArchive {
  return inv.runtime.archive;
}

export async function listSessions(inv: Invocation): Promise<RouteResponse> {
  const limit = limitFrom(inv, 20, 100);
  const cursor = decodeCursor(inv.event.queryStringParameters?.cursor, [
    'pk',
    'sk',
    'activityPk',
    'activitySk',
  ]);
  const { sessions, next } = await archiveOf(inv).listSessions(inv.userId, limit, cursor);
  return json(200, { sessions: sessions.map(sessionJson), next_cursor: next ? encodeCursor(next) : null });
}

export async function getSession(inv: Invocation, sessionId: string): Promise<RouteResponse> {
  const session = await archiveOf(inv).getSession(inv.userId, sessionId);
  if (!session) throw notFound();
  return json(200, sessionJson(session));
}

/**
 * The newest messages first served from the cached history when it holds them (a turn just answered
 * is there before the consumer stored it), else from DynamoDB; older pages always from DynamoDB.
 */
export async function listMessages(inv: Invocation, sessionId: string): Promise<RouteResponse> {
  const { runtime } = inv;
  const limit = limitFrom(inv, 50, 200);
  const format = inv.event.queryStringParameters?.format;
  if (format !== undefined && format !== 'ai-sdk') {
    throw new HttpError(400, 'invalid_request', 'format must be ai-sdk when given.', {
      details: { field: 'format' },
    });
  }
  const cursor = decodeCursor(inv.event.queryStringParameters?.cursor, ['before']);
  let page: { messages: ChatMessage[]; more: boolean } | undefined;
  if (!cursor && runtime.turnDeps.cache) {
    const cached = await runtime.turnDeps.cache
      .loadConversation(inv.userId, sessionId, AbortSignal.timeout(runtime.config.CACHE_TIMEOUT_MS))
      .catch(() => undefined);
    const history = cached?.history;
    // The cache keeps the newest HISTORY_LIMIT messages: a shorter list is the whole conversation.
    if (
      history &&
      (history.length < runtime.config.HISTORY_LIMIT || history.length >= limit) &&
      history.length > 0
    ) {
      page = {
        messages: history.slice(-limit),
        more: history.length >= runtime.config.HISTORY_LIMIT,
      };
    }
  }
  if (!page) {
    page = await archiveOf(inv).listMessages(inv.userId, sessionId, limit, cursor?.before);
    if (page.messages.length === 0 && !cursor && !(await archiveOf(inv).getSession(inv.userId, sessionId))) {
      throw notFound();
    }
  }
  const messages = visibleMessages(page.messages);
  const oldest = page.messages[0]?.messageId;
  const next_cursor = page.more && oldest ? encodeCursor({ before: oldest }) : null;
  if (format === 'ai-sdk') return json(200, { messages: messages.map(uiMessage), next_cursor });
  return json(200, { messages: messages.map(messageJson), next_cursor });
}

export async function renameSession(inv: Invocation, sessionId: string): Promise<RouteResponse> {
  const { title } = parseJsonBody(readJsonBody(inv.event, 4096), renameSchema);
  const session = await archiveOf(inv).renameSession(inv.userId, sessionId, title.trim());
  if (!session) throw notFound();
  return json(200, sessionJson(session));
}

/**
 * Redis first (its marker refuses every later cache and journal write of older turns, and stops a running
 * one), then the table. A Redis failure does not stop the table's delete; the client is told to retry.
 */
async function forgetEverywhere(
  inv: Invocation,
  forgetCached: () => Promise<unknown>,
  deleteStored: () => Promise<void>,
): Promise<RouteResponse> {
  const forget = () =>
    forgetCached().then(
      () => true,
      (error: unknown) => {
        inv.runtime.logger.warn('cache not cleared on delete', { error: errorName(error) });
        return false;
      },
    );
  const first = await forget();
  await deleteStored();
  if (!first && !(await forget())) {
    throw new HttpError(
      503,
      'cache_unavailable',
      'Deleted from storage, but the cache could not be cleared. Send the same request again.',
      { headers: { 'retry-after': '5' } },
    );
  }
  return noContent();
}

export async function deleteSession(inv: Invocation, sessionId: string): Promise<RouteResponse> {
  const { forgetter } = inv.runtime;
  return forgetEverywhere(
    inv,
    async () => forgetter?.forgetSession(inv.userId, sessionId),
    () => archiveOf(inv).deleteSession(inv.userId, sessionId),
  );
}

export async function eraseUser(inv: Invocation): Promise<RouteResponse> {
  const { forgetter } = inv.runtime;
  return forgetEverywhere(
    inv,
    async () => forgetter?.forgetUser(inv.userId),
    () => archiveOf(inv).eraseUser(inv.userId),
  );
}
