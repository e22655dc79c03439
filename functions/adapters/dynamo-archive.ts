import {
  BatchGetCommand,
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import {
  ACTIVITY_INDEX,
  TABLE_KEYS,
  TOMBSTONE_TTL_SECONDS,
  TTL_ATTRIBUTE,
  tableKeys,
} from '../contracts/table.ts';
import {
  type ConversationArchive,
  type DailyUsage,
  decodeCursor,
  encodeCursor,
  type SessionSummary,
  turnStartOf,
} from '../core/conversations.ts';
import { RequestRejected } from '../core/errors.ts';
import type { ChatMessage, Feedback } from '../core/messages.ts';
import { DynamoSessionSearch } from './dynamo-search.ts';
import { toChatMessage } from './dynamo-store.ts';

const { partitionKey: PK, sortKey: SK } = TABLE_KEYS;
type Item = Record<string, unknown>;

const toSummary = (item: Item): SessionSummary => ({
  sessionId: String(item.sessionId),
  title: typeof item.title === 'string' ? item.title : '',
  titleSource: item.titleSource === 'user' || item.titleSource === 'generated' ? item.titleSource : 'auto',
  createdAt: String(item.createdAt),
  updatedAt: String(item.updatedAt),
  messageCount: Number(item.messageCount ?? 0),
});

const invalidCursor = () =>
  new RequestRejected('invalid', 'invalid_cursor', 'The cursor is not one this service returned.', {
    field: 'cursor',
  });

const isLive = (item: Item | undefined): item is Item => item !== undefined && item.deletedAt === undefined;
const tombstoneExpiry = () => Math.floor(Date.now() / 1000) + TOMBSTONE_TTL_SECONDS;

/** Conversations as a person reads and manages them: DynamoDB Query and GetItem only, never a scan. */
export class DynamoConversationArchive implements ConversationArchive {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #search: DynamoSessionSearch;

  constructor(db: DynamoDBDocumentClient, tableName: string) {
    this.#db = db;
    this.#table = tableName;
    this.#search = new DynamoSessionSearch(db, tableName);
  }

  async searchSessions(userId: string, terms: string[], limit: number, cursor: string | undefined) {
    const { sessionIds, next } = await this.#search.find(userId, terms, limit, cursor);
    const sessions = (await this.#sessionsById(userId, sessionIds)).sort((a, b) =>
      a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0,
    );
    return { sessions, next };
  }

  /** The live sessions among `ids` (at most 100), in one BatchGetItem, retried for unprocessed keys. */
  async #sessionsById(userId: string, ids: string[]): Promise<SessionSummary[]> {
    const found: SessionSummary[] = [];
    let keys: Item[] = [...new Set(ids)].map((id) => tableKeys.session(userId, id));
    for (let attempt = 0; keys.length > 0; attempt++) {
      if (attempt > 5) throw new Error('sessions left unread after retries');
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      const { Responses, UnprocessedKeys } = await this.#db.send(
        new BatchGetCommand({ RequestItems: { [this.#table]: { Keys: keys } } }),
      );
      found.push(...(Responses?.[this.#table] ?? []).filter(isLive).map(toSummary));
      keys = (UnprocessedKeys?.[this.#table]?.Keys ?? []) as Item[];
    }
    return found;
  }

  async listSessions(userId: string, limit: number, after: string | undefined) {
    const partition = tableKeys.userPartition(userId);
    const cursor = decodeCursor(after, [PK, SK, ACTIVITY_INDEX.partitionKey, ACTIVITY_INDEX.sortKey]);
    if (cursor && (cursor[ACTIVITY_INDEX.partitionKey] !== partition || cursor[PK] !== partition)) {
      throw invalidCursor();
    }
    const query = new QueryCommand({
      TableName: this.#table,
      IndexName: ACTIVITY_INDEX.name,
      KeyConditionExpression: '#apk = :pk',
      ExpressionAttributeNames: { '#apk': ACTIVITY_INDEX.partitionKey },
      ExpressionAttributeValues: { ':pk': partition },
      ScanIndexForward: false,
      Limit: limit,
      ...(cursor ? { ExclusiveStartKey: cursor } : {}),
    });
    // A cursor of the right shape can still name no valid position (an empty key part): a 400, not a 5xx.
    const { Items = [], LastEvaluatedKey } = await this.#db.send(query).catch((error: { name?: string }) => {
      if (cursor && error.name === 'ValidationException') throw invalidCursor();
      throw error;
    });
    return {
      sessions: Items.map(toSummary),
      next: LastEvaluatedKey ? encodeCursor(LastEvaluatedKey as Record<string, string>) : undefined,
    };
  }

  async getSession(userId: string, sessionId: string): Promise<SessionSummary | undefined> {
    const { Item } = await this.#db.send(
      new GetCommand({ TableName: this.#table, Key: tableKeys.session(userId, sessionId) }),
    );
    return isLive(Item) ? toSummary(Item) : undefined;
  }

  /**
   * A page of the session's messages. The session item is read beside it: between a delete's tombstone
   * and the consumer taking back a message it was writing, that message's item exists for a moment, and
   * a turn that started before the delete is never served. The same read tells whether the session
   * exists, so an empty page needs no second read to be a 404.
   */
  async listMessages(userId: string, sessionId: string, limit: number, beforeMessageId: string | undefined) {
    const [{ Items = [] }, { Item: session }] = await Promise.all([
      this.#listMessageItems(userId, sessionId, limit, beforeMessageId),
      this.#db.send(
        new GetCommand({
          TableName: this.#table,
          Key: tableKeys.session(userId, sessionId),
          ProjectionExpression: 'deletedAt',
          ConsistentRead: true,
        }),
      ),
    ]);
    const deletedAt = typeof session?.deletedAt === 'string' ? Date.parse(session.deletedAt) : undefined;
    const messages = Items.slice(0, limit)
      .reverse()
      .map(toChatMessage)
      .filter((message) => deletedAt === undefined || turnStartOf(message) > deletedAt);
    return { messages, more: Items.length > limit && messages.length > 0, sessionFound: isLive(session) };
  }

  #listMessageItems(userId: string, sessionId: string, limit: number, beforeMessageId: string | undefined) {
    return this.#db.send(
      new QueryCommand({
        TableName: this.#table,
        KeyConditionExpression: beforeMessageId ? '#pk = :pk AND #sk < :before' : '#pk = :pk',
        ExpressionAttributeNames: { '#pk': PK, ...(beforeMessageId ? { '#sk': SK } : {}) },
        ExpressionAttributeValues: {
          ':pk': tableKeys.messagePartition(userId, sessionId),
          ...(beforeMessageId ? { ':before': `MSG#${beforeMessageId}` } : {}),
        },
        ScanIndexForward: false,
        // One more than asked tells whether older messages remain.
        Limit: limit + 1,
        ConsistentRead: true,
      }),
    );
  }

  /**
   * The rating on the stored answer item (one conditional update: only an existing answer of this user's
   * session, whose keys start with the verified user id); `undefined` when there is no such answer.
   */
  async setFeedback(
    userId: string,
    sessionId: string,
    messageId: string,
    feedback: Feedback | undefined,
  ): Promise<ChatMessage | undefined> {
    try {
      const { Attributes } = await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: tableKeys.message({ userId, sessionId, messageId }),
          UpdateExpression: feedback ? 'SET feedback = :feedback' : 'REMOVE feedback',
          ConditionExpression: 'attribute_exists(#pk) AND #role = :assistant',
          ExpressionAttributeNames: { '#pk': PK, '#role': 'role' },
          ExpressionAttributeValues: {
            ':assistant': 'assistant',
            ...(feedback ? { ':feedback': feedback } : {}),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return Attributes ? toChatMessage(Attributes) : undefined;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return undefined;
      throw error;
    }
  }

  async renameSession(userId: string, sessionId: string, title: string) {
    try {
      const { Attributes } = await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: tableKeys.session(userId, sessionId),
          UpdateExpression: 'SET title = :title, titleSource = :user',
          ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(deletedAt)',
          ExpressionAttributeNames: { '#pk': PK },
          ExpressionAttributeValues: { ':title': title, ':user': 'user' },
          ReturnValues: 'ALL_NEW',
        }),
      );
      if (!Attributes) return undefined;
      await this.#search.setTitle(userId, sessionId, title);
      return toSummary(Attributes);
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return undefined;
      throw error;
    }
  }

  /**
   * The session item becomes a tombstone first (the consumer refuses to write under it), then the
   * messages go. A message the consumer writes in between is removed by the consumer itself when its
   * session update meets the tombstone; one written before is found by the consistent query here.
   */
  async deleteSession(userId: string, sessionId: string): Promise<void> {
    const now = new Date().toISOString();
    await this.#db.send(
      new PutCommand({
        TableName: this.#table,
        Item: {
          ...tableKeys.session(userId, sessionId),
          sessionId,
          deletedAt: now,
          [TTL_ATTRIBUTE]: tombstoneExpiry(),
        },
      }),
    );
    await this.#search.forget(userId, sessionId);
    await this.#deletePartition(tableKeys.messagePartition(userId, sessionId));
  }

  /** The erasure marker first, then every item of the user; the consumer checks the marker after each write. */
  async eraseUser(userId: string): Promise<void> {
    const erasedAt = new Date().toISOString();
    await this.#db.send(
      new PutCommand({
        TableName: this.#table,
        Item: { ...tableKeys.erasure(userId), erasedAt, [TTL_ATTRIBUTE]: tombstoneExpiry() },
      }),
    );
    const partition = tableKeys.userPartition(userId);
    const items = await this.#keysOf(partition);
    for (const key of items) {
      const sk = String(key[SK]);
      if (sk.startsWith(tableKeys.sessionPrefix)) {
        await this.#deletePartition(
          tableKeys.messagePartition(userId, sk.slice(tableKeys.sessionPrefix.length)),
        );
      }
    }
    await this.#deleteKeys(items.filter((key) => key[SK] !== tableKeys.erasure(userId)[SK]));
  }

  async usageOn(userId: string, day: string): Promise<DailyUsage> {
    const usage: DailyUsage = { day, turns: 0, inputTokens: 0, outputTokens: 0, byModel: {} };
    let start: Item | undefined;
    do {
      const page = await this.#db.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
          ExpressionAttributeNames: { '#pk': PK, '#sk': SK },
          ExpressionAttributeValues: {
            ':pk': tableKeys.userPartition(userId),
            ':prefix': tableKeys.usagePrefix(day),
          },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) {
        usage.turns++;
        usage.inputTokens += Number(item.inputTokens ?? 0);
        usage.outputTokens += Number(item.outputTokens ?? 0);
        const model = typeof item.model === 'string' ? item.model : 'unknown';
        const entry = usage.byModel[model] ?? { turns: 0, inputTokens: 0, outputTokens: 0 };
        usage.byModel[model] = entry;
        entry.turns++;
        entry.inputTokens += Number(item.inputTokens ?? 0);
        entry.outputTokens += Number(item.outputTokens ?? 0);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return usage;
  }

  async #keysOf(partition: string): Promise<Item[]> {
    const keys: Item[] = [];
    let start: Item | undefined;
    do {
      const page = await this.#db.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': PK, '#sk': SK },
          ExpressionAttributeValues: { ':pk': partition },
          ProjectionExpression: '#pk, #sk',
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      keys.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return keys;
  }

  async #deletePartition(partition: string): Promise<void> {
    await this.#deleteKeys(await this.#keysOf(partition));
  }

  async #deleteKeys(keys: Item[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 25) {
      let requests = keys.slice(i, i + 25).map((Key) => ({ DeleteRequest: { Key } }));
      // Unprocessed items come back under throttling: retry them with a short back-off.
      for (let attempt = 0; requests.length > 0; attempt++) {
        if (attempt > 5) throw new Error('items left undeleted after retries');
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
        const { UnprocessedItems } = await this.#db.send(
          new BatchWriteCommand({ RequestItems: { [this.#table]: requests } }),
        );
        requests = (UnprocessedItems?.[this.#table] ?? []) as typeof requests;
      }
    }
  }
}
