import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ACTIVITY_INDEX, TABLE_KEYS, TTL_ATTRIBUTE, tableKeys } from '../contracts/table.ts';
import { turnStartOf } from '../core/conversations.ts';
import type { ChatMessage, UserProfile } from '../core/messages.ts';
import type { ConversationStore, MessageWriter, SaveResult, UsageRecorder } from '../core/ports.ts';
import { DynamoSessionSearch } from './dynamo-search.ts';

const { partitionKey: PK } = TABLE_KEYS;

export function createDocumentClient(config: DynamoDBClientConfig = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient(config), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

const TITLE_CHARS = 80;

/** A stored message item as the domain's message (table keys and bookkeeping left out). */
export function toChatMessage(item: Record<string, unknown>): ChatMessage {
  return {
    messageId: item.messageId,
    sessionId: item.sessionId,
    userId: item.userId,
    role: item.role,
    content: item.content,
    createdAt: item.createdAt,
    ...(item.clientMessageId ? { clientMessageId: item.clientMessageId } : {}),
    ...(item.replaces ? { replaces: item.replaces } : {}),
    ...(item.parentId !== undefined ? { parentId: item.parentId } : {}),
    ...(item.feedback ? { feedback: item.feedback } : {}),
    ...(item.sources ? { sources: item.sources } : {}),
    ...(item.usage ? { usage: item.usage } : {}),
    ...(item.stopReason ? { stopReason: item.stopReason } : {}),
    ...(item.attachments ? { attachments: item.attachments } : {}),
    ...(item.model ? { model: item.model } : {}),
  } as ChatMessage;
}

/** The first words of the first question: the title until a generated or user-given one replaces it. */
const provisionalTitle = (question: string) => question.replace(/\s+/g, ' ').trim().slice(0, TITLE_CHARS);

export class DynamoConversationStore implements ConversationStore, MessageWriter, UsageRecorder {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #ttlDays: number;
  readonly #search: DynamoSessionSearch;

  constructor(db: DynamoDBDocumentClient, tableName: string, messageTtlDays = 0) {
    this.#db = db;
    this.#table = tableName;
    this.#ttlDays = messageTtlDays;
    this.#search = new DynamoSessionSearch(db, tableName);
  }

  async getProfile(userId: string, signal?: AbortSignal): Promise<UserProfile | undefined> {
    const { Item } = await this.#db.send(
      new GetCommand({ TableName: this.#table, Key: tableKeys.profile(userId) }),
      { abortSignal: signal },
    );
    if (!Item) return undefined;
    return { userId, name: Item.name, preferences: Item.preferences };
  }

  async getRecentMessages(
    userId: string,
    sessionId: string,
    limit: number,
    signal?: AbortSignal,
  ): Promise<ChatMessage[]> {
    if (limit === 0) return [];
    const { Items = [] } = await this.#db.send(
      new QueryCommand({
        TableName: this.#table,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': PK },
        ExpressionAttributeValues: { ':pk': tableKeys.messagePartition(userId, sessionId) },
        ScanIndexForward: false,
        Limit: limit,
      }),
      { abortSignal: signal },
    );
    return Items.reverse().map(toChatMessage);
  }

  /**
   * Idempotent without transactions: the message item is put only if absent, and the session is
   * updated only if its last message id is older than this one (UUIDv7 ids sort by time, and a FIFO
   * group delivers a conversation in order). A redelivery therefore changes nothing and is a success.
   * Deletion wins over every message of a turn that started before it (the turn's start is in its ids):
   * the session's tombstone refuses the update, the erasure marker is checked after the writes, and
   * what was written under either is taken back. A turn that started after a delete may use the
   * id again: its first message turns the tombstone back into a session.
   */
  async save(message: ChatMessage): Promise<SaveResult> {
    const turnStartedAt = new Date(turnStartOf(message)).toISOString();
    const expiresAt =
      this.#ttlDays > 0
        ? Math.floor(Date.parse(message.createdAt) / 1000) + this.#ttlDays * 86_400
        : undefined;
    const messagePut = await this.#conditional(
      new PutCommand({
        TableName: this.#table,
        Item: {
          ...tableKeys.message(message),
          ...message,
          ...(expiresAt ? { [TTL_ATTRIBUTE]: expiresAt } : {}),
        },
        ConditionExpression: 'attribute_not_exists(#pk)',
        ExpressionAttributeNames: { '#pk': PK },
      }),
    );
    // Search terms before the session update: a delete or an erasure seen after it takes them back below.
    await this.#search.addMessage(message, expiresAt);
    const session = await this.#updateSession(message, expiresAt, turnStartedAt);
    const sessionDeleted = session === undefined && (await this.#sessionDeletedSince(message, turnStartedAt));
    if (sessionDeleted) await this.#takeBack(message, false);
    // Billing is per answer, whichever write of its session won the ordering race, and survives the
    // conversation's delete (no session id on it); only an erasure takes it back.
    if (message.role === 'assistant' && message.usage) await this.#recordUsage(message);
    if (await this.#erasedSince(message.userId, turnStartedAt)) {
      await this.#takeBack(message, true);
      return { outcome: 'discarded', firstAnswer: false };
    }
    if (sessionDeleted) return { outcome: 'discarded', firstAnswer: false };
    const firstAnswer =
      session !== undefined &&
      message.role === 'assistant' &&
      session.titleSource === 'auto' &&
      Number(session.messageCount) <= 2;
    return { outcome: messagePut || session ? 'written' : 'duplicate', firstAnswer };
  }

  /** The session's update for a new message; `undefined` when its condition refused it (older id or deleted since). */
  async #updateSession(
    message: ChatMessage,
    expiresAt: number | undefined,
    turnStartedAt: string,
  ): Promise<Record<string, unknown> | undefined> {
    const activity = tableKeys.activity(message.userId, message.createdAt, message.sessionId);
    const set = [
      'updatedAt = :at',
      'lastMessageId = :id',
      'createdAt = if_not_exists(createdAt, :at)',
      'sessionId = :sid',
      '#apk = :apk',
      '#ask = :ask',
    ];
    const names: Record<string, string> = {
      '#apk': ACTIVITY_INDEX.partitionKey,
      '#ask': ACTIVITY_INDEX.sortKey,
      '#ttl': TTL_ATTRIBUTE,
    };
    const values: Record<string, unknown> = {
      ':at': message.createdAt,
      ':id': message.messageId,
      ':sid': message.sessionId,
      ':one': 1,
      ':apk': activity[ACTIVITY_INDEX.partitionKey],
      ':ask': activity[ACTIVITY_INDEX.sortKey],
      ':started': turnStartedAt,
    };
    if (message.role === 'user') {
      set.push('title = if_not_exists(title, :title)', 'titleSource = if_not_exists(titleSource, :auto)');
      values[':title'] = provisionalTitle(message.content);
      values[':auto'] = 'auto';
    }
    // A revived tombstone loses its deletion and, unless messages expire, its expiry.
    const remove = ['deletedAt'];
    if (expiresAt) {
      set.push('#ttl = :ttl');
      values[':ttl'] = expiresAt;
    } else {
      remove.push('#ttl');
    }
    try {
      const { Attributes } = await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: tableKeys.session(message.userId, message.sessionId),
          UpdateExpression: `SET ${set.join(', ')} REMOVE ${remove.join(', ')} ADD messageCount :one`,
          ConditionExpression:
            '(attribute_not_exists(lastMessageId) OR lastMessageId < :id) AND (attribute_not_exists(deletedAt) OR deletedAt < :started)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return Attributes;
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
      return undefined;
    }
  }

  /** A generated title, unless the user named the session meanwhile (or it was deleted). */
  async setGeneratedTitle(userId: string, sessionId: string, title: string): Promise<boolean> {
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: tableKeys.session(userId, sessionId),
          UpdateExpression: 'SET title = :title, titleSource = :generated',
          ConditionExpression: 'titleSource = :auto AND attribute_not_exists(deletedAt)',
          ExpressionAttributeValues: { ':title': title, ':generated': 'generated', ':auto': 'auto' },
        }),
      );
      await this.#search.setTitle(userId, sessionId, title);
      return true;
    } catch (error) {
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }

  async #sessionDeletedSince(message: ChatMessage, turnStartedAt: string): Promise<boolean> {
    const { Item } = await this.#db.send(
      new GetCommand({
        TableName: this.#table,
        Key: tableKeys.session(message.userId, message.sessionId),
        ConsistentRead: true,
      }),
    );
    return typeof Item?.deletedAt === 'string' && Item.deletedAt >= turnStartedAt;
  }

  async #erasedSince(userId: string, turnStartedAt: string): Promise<boolean> {
    const { Item } = await this.#db.send(
      new GetCommand({ TableName: this.#table, Key: tableKeys.erasure(userId), ConsistentRead: true }),
    );
    return typeof Item?.erasedAt === 'string' && Item.erasedAt >= turnStartedAt;
  }

  /** Removes what this delivery wrote under a deleted session or, with its session and usage, an erased user. */
  async #takeBack(message: ChatMessage, erased: boolean): Promise<void> {
    await this.#db.send(new DeleteCommand({ TableName: this.#table, Key: tableKeys.message(message) }));
    await this.#search.forget(message.userId, message.sessionId, message);
    if (erased) {
      await this.#db.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: tableKeys.usage(message.userId, message.createdAt.slice(0, 10), message.messageId),
        }),
      );
      await this.#db
        .send(
          new DeleteCommand({
            TableName: this.#table,
            Key: tableKeys.session(message.userId, message.sessionId),
            // Not a session a turn after the erasure has written to since.
            ConditionExpression:
              'attribute_not_exists(deletedAt) AND (attribute_not_exists(lastMessageId) OR lastMessageId <= :id)',
            ExpressionAttributeValues: { ':id': message.messageId },
          }),
        )
        .catch((error: { name?: string }) => {
          if (error.name !== 'ConditionalCheckFailedException') throw error;
        });
    }
  }

  /** One item per answer, put once: a redelivery cannot count a turn twice. */
  #recordUsage(message: ChatMessage): Promise<void> {
    return this.#putUsage({
      userId: message.userId,
      messageId: message.messageId,
      createdAt: message.createdAt,
      model: message.model,
      usage: message.usage ?? { input_tokens: 0, output_tokens: 0 },
    });
  }

  /**
   * A stateless turn's only write. Like a stored answer's, it is taken back when the user was erased after
   * the turn began (the answer ends, and this is written, after a `DELETE /me` sent mid-answer).
   */
  async recordUsage(entry: Parameters<UsageRecorder['recordUsage']>[0]): Promise<void> {
    await this.#putUsage(entry);
    const turnStartedAt = new Date(turnStartOf(entry)).toISOString();
    if (await this.#erasedSince(entry.userId, turnStartedAt)) {
      await this.#db.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: tableKeys.usage(entry.userId, entry.createdAt.slice(0, 10), entry.messageId),
        }),
      );
    }
  }

  /** The usage item of an answer, with the model that wrote it. */
  async #putUsage(entry: Parameters<UsageRecorder['recordUsage']>[0]): Promise<void> {
    await this.#conditional(
      new PutCommand({
        TableName: this.#table,
        Item: {
          ...tableKeys.usage(entry.userId, entry.createdAt.slice(0, 10), entry.messageId),
          inputTokens: entry.usage.input_tokens,
          outputTokens: entry.usage.output_tokens,
          createdAt: entry.createdAt,
          ...(entry.model ? { model: entry.model } : {}),
        },
        ConditionExpression: 'attribute_not_exists(#pk)',
        ExpressionAttributeNames: { '#pk': PK },
      }),
    );
  }

  /** Runs a conditional write; `false` when its condition said the write was already done. */
  async #conditional(command: PutCommand): Promise<boolean> {
    try {
      await this.#db.send(command);
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}
