import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { TABLE_KEYS, TTL_ATTRIBUTE, tableKeys } from '../contracts/table.ts';
import { decodeCursor, encodeCursor } from '../core/conversations.ts';
import { RequestRejected } from '../core/errors.ts';
import type { ChatMessage } from '../core/messages.ts';
import { termsOf } from '../core/search-terms.ts';

const { partitionKey: PK, sortKey: SK } = TABLE_KEYS;

/** Search items evaluated per DynamoDB page, and pages per request: one request reads at most 1,000 conversations. */
const ITEMS_PER_READ = 200;
const READS_PER_REQUEST = 5;

const invalidCursor = () =>
  new RequestRejected('invalid', 'invalid_cursor', 'The cursor is not one this service returned.', {
    field: 'cursor',
  });

/**
 * One search item per conversation in the user's own partition (`SEARCH#<session id>`): the distinct
 * terms of its messages (a string set, grown with `ADD`, so a redelivered message changes nothing) and of
 * its title (replaced on rename). A search is a Query of that partition with a `contains` filter per
 * term: no index, no scan, bounded per request, and erasure removes it with the rest of the partition.
 */
export class DynamoSessionSearch {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;

  constructor(db: DynamoDBDocumentClient, tableName: string) {
    this.#db = db;
    this.#table = tableName;
  }

  /** Adds a stored message's terms (and its expiry, when messages expire) to its conversation's item. */
  async addMessage(message: ChatMessage, expiresAt: number | undefined): Promise<void> {
    const terms = termsOf(message.content);
    const set = ['sessionId = :sid', 'updatedAt = :at'];
    const values: Record<string, unknown> = { ':sid': message.sessionId, ':at': message.createdAt };
    if (expiresAt) {
      set.push('#ttl = :ttl');
      values[':ttl'] = expiresAt;
    }
    if (terms.length > 0) values[':terms'] = new Set(terms);
    await this.#db.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: tableKeys.search(message.userId, message.sessionId),
        UpdateExpression: `SET ${set.join(', ')}${terms.length > 0 ? ' ADD terms :terms' : ''}`,
        ...(expiresAt ? { ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE } } : {}),
        ExpressionAttributeValues: values,
      }),
    );
  }

  /** The title's terms replace the previous title's; only on an item the messages created (never a new one). */
  async setTitle(userId: string, sessionId: string, title: string): Promise<void> {
    const terms = termsOf(title);
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: tableKeys.search(userId, sessionId),
          UpdateExpression: terms.length > 0 ? 'SET titleTerms = :terms' : 'REMOVE titleTerms',
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#pk': PK },
          ...(terms.length > 0 ? { ExpressionAttributeValues: { ':terms': new Set(terms) } } : {}),
        }),
      );
    } catch (error) {
      if ((error as { name?: string }).name !== 'ConditionalCheckFailedException') throw error;
    }
  }

  /** Deletes the conversation's item; with `writtenBy`, only if no later message has added to it since. */
  async forget(userId: string, sessionId: string, writtenBy?: ChatMessage): Promise<void> {
    await this.#db
      .send(
        new DeleteCommand({
          TableName: this.#table,
          Key: tableKeys.search(userId, sessionId),
          ...(writtenBy
            ? {
                ConditionExpression: 'attribute_not_exists(updatedAt) OR updatedAt <= :at',
                ExpressionAttributeValues: { ':at': writtenBy.createdAt },
              }
            : {}),
        }),
      )
      .catch((error: { name?: string }) => {
        if (error.name !== 'ConditionalCheckFailedException') throw error;
      });
  }

  /** A search cursor of this user's partition, or a 400. */
  #startOf(userId: string, after: string | undefined): Record<string, string> | undefined {
    const start = decodeCursor(after, [PK, SK]);
    const valid =
      !start ||
      (start[PK] === tableKeys.userPartition(userId) && start[SK]?.startsWith(tableKeys.searchPrefix));
    if (!valid) throw invalidCursor();
    return start;
  }

  /** One page of the user's search items that hold every term (read: up to `ITEMS_PER_READ` items). */
  async #read(userId: string, terms: string[], start: Record<string, unknown> | undefined) {
    const values: Record<string, unknown> = {
      ':pk': tableKeys.userPartition(userId),
      ':prefix': tableKeys.searchPrefix,
    };
    const filter = terms.map((term, i) => {
      values[`:t${i}`] = term;
      return `(contains(terms, :t${i}) OR contains(titleTerms, :t${i}))`;
    });
    const page = await this.#db.send(
      new QueryCommand({
        TableName: this.#table,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
        FilterExpression: filter.join(' AND '),
        ProjectionExpression: '#pk, #sk, sessionId',
        ExpressionAttributeNames: { '#pk': PK, '#sk': SK },
        ExpressionAttributeValues: values,
        Limit: ITEMS_PER_READ,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    return { items: page.Items ?? [], next: page.LastEvaluatedKey };
  }

  /**
   * Ids of the conversations whose messages or title hold every term, at most `limit`, reading at most
   * `READS_PER_REQUEST` pages: a page of results may be short (even empty) and still have a `next`.
   */
  async find(
    userId: string,
    terms: string[],
    limit: number,
    after: string | undefined,
  ): Promise<{ sessionIds: string[]; next: string | undefined }> {
    let start: Record<string, unknown> | undefined = this.#startOf(userId, after);
    const sessionIds: string[] = [];
    for (let read = 0; read < READS_PER_REQUEST; read++) {
      const { items, next } = await this.#read(userId, terms, start);
      const room = limit - sessionIds.length;
      if (items.length >= room) {
        // Enough: the next request starts after the last conversation returned, not after the page.
        const taken = items.slice(0, room);
        sessionIds.push(...taken.map((item) => String(item.sessionId)));
        const last = taken.at(-1);
        const more = items.length > room || next !== undefined;
        return {
          sessionIds,
          next: last && more ? encodeCursor({ [PK]: String(last[PK]), [SK]: String(last[SK]) }) : undefined,
        };
      }
      sessionIds.push(...items.map((item) => String(item.sessionId)));
      start = next;
      if (!start) break;
    }
    return { sessionIds, next: start ? encodeCursor(start as Record<string, string>) : undefined };
  }
}
