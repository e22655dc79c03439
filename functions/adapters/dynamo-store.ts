import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { TABLE_KEYS, TTL_ATTRIBUTE, tableKeys } from '../contracts/table.ts';
import type { ChatMessage, UserProfile } from '../core/messages.ts';
import type { ConversationStore, MessageWriter, SaveOutcome } from '../core/ports.ts';

const { partitionKey: PK } = TABLE_KEYS;

export function createDocumentClient(config: DynamoDBClientConfig = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient(config), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

const TITLE_CHARS = 80;

export class DynamoConversationStore implements ConversationStore, MessageWriter {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #ttlDays: number;

  constructor(db: DynamoDBDocumentClient, tableName: string, messageTtlDays = 0) {
    this.#db = db;
    this.#table = tableName;
    this.#ttlDays = messageTtlDays;
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
    return Items.reverse().map((item) => ({
      messageId: item.messageId,
      sessionId: item.sessionId,
      userId: item.userId,
      role: item.role,
      content: item.content,
      createdAt: item.createdAt,
      ...(item.sources ? { sources: item.sources } : {}),
      ...(item.usage ? { usage: item.usage } : {}),
      ...(item.stopReason ? { stopReason: item.stopReason } : {}),
    }));
  }

  /**
   * Idempotent without transactions: the message item is put only if absent, and the session is
   * updated only if its last message id is older than this one (UUIDv7 ids sort by time, and a FIFO
   * group delivers a conversation in order). A redelivery therefore changes nothing and is a success.
   */
  async save(message: ChatMessage): Promise<SaveOutcome> {
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
    const set = [
      'updatedAt = :at',
      'lastMessageId = :id',
      'createdAt = if_not_exists(createdAt, :at)',
      'sessionId = :sid',
    ];
    const values: Record<string, unknown> = {
      ':at': message.createdAt,
      ':id': message.messageId,
      ':sid': message.sessionId,
      ':one': 1,
    };
    if (message.role === 'user') {
      set.push('title = if_not_exists(title, :title)');
      values[':title'] = message.content.replace(/\s+/g, ' ').trim().slice(0, TITLE_CHARS);
    }
    if (expiresAt) {
      set.push(`#ttl = :ttl`);
      values[':ttl'] = expiresAt;
    }
    const sessionUpdate = await this.#conditional(
      new UpdateCommand({
        TableName: this.#table,
        Key: tableKeys.session(message.userId, message.sessionId),
        UpdateExpression: `SET ${set.join(', ')} ADD messageCount :one`,
        ConditionExpression: 'attribute_not_exists(lastMessageId) OR lastMessageId < :id',
        ExpressionAttributeValues: values,
        ...(expiresAt ? { ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE } } : {}),
      }),
    );
    return messagePut || sessionUpdate ? 'written' : 'duplicate';
  }

  /** Runs a conditional write; `false` when its condition said the write was already done. */
  async #conditional(command: PutCommand | UpdateCommand): Promise<boolean> {
    try {
      await this.#db.send(command as PutCommand);
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}
