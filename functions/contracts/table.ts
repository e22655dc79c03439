/**
 * The single table's shape and every key the runtime, the CDK stack, the local stack and the tests use.
 * Every key starts with the verified user id, so one user can never reach another's items.
 */
export const TABLE_KEYS = { partitionKey: 'pk', sortKey: 'sk' } as const;

/** Epoch seconds after which DynamoDB TTL deletes an item. */
export const TTL_ATTRIBUTE = 'expiresAt';

/** Tombstones outlive every message still in the queue (its retention is 14 days). */
export const TOMBSTONE_TTL_SECONDS = 15 * 24 * 3600;

const { partitionKey: PK, sortKey: SK } = TABLE_KEYS;

/**
 * Sessions by latest activity, newest first, for one user: only live session items carry these
 * attributes (a deleted session's tombstone drops them), so the index lists exactly the live ones.
 */
export const ACTIVITY_INDEX = {
  name: 'byActivity',
  partitionKey: 'activityPk',
  sortKey: 'activitySk',
} as const;

export const tableKeys = {
  userPartition: (userId: string) => `USER#${userId}`,
  profile: (userId: string) => ({ [PK]: `USER#${userId}`, [SK]: 'PROFILE' }),
  session: (userId: string, sessionId: string) => ({ [PK]: `USER#${userId}`, [SK]: `SESSION#${sessionId}` }),
  sessionPrefix: 'SESSION#',
  /** `updatedAt` first, so the index sorts by activity; the id keeps equal times apart. */
  activity: (userId: string, updatedAt: string, sessionId: string) => ({
    [ACTIVITY_INDEX.partitionKey]: `USER#${userId}`,
    [ACTIVITY_INDEX.sortKey]: `${updatedAt}#${sessionId}`,
  }),
  /** One item per answered turn, for daily usage that survives the cache: `USAGE#<day>#<message id>`. */
  usage: (userId: string, day: string, messageId: string) => ({
    [PK]: `USER#${userId}`,
    [SK]: `USAGE#${day}#${messageId}`,
  }),
  usagePrefix: (day: string) => `USAGE#${day}#`,
  /** A conversation's search terms (message words, title words), kept by the consumer: `SEARCH#<session id>`. */
  search: (userId: string, sessionId: string) => ({ [PK]: `USER#${userId}`, [SK]: `SEARCH#${sessionId}` }),
  searchPrefix: 'SEARCH#',
  /** Set by `DELETE /me`: a message older than this that arrives later is discarded, never stored. */
  erasure: (userId: string) => ({ [PK]: `USER#${userId}`, [SK]: 'ERASED' }),
  messagePartition: (userId: string, sessionId: string) => `USER#${userId}#SESSION#${sessionId}`,
  message: (m: { userId: string; sessionId: string; messageId: string }) => ({
    [PK]: tableKeys.messagePartition(m.userId, m.sessionId),
    [SK]: `MSG#${m.messageId}`,
  }),
};

/** The table as a CreateTable input (the local stack sends this to dynalite; the CDK table mirrors it). */
export function tableDefinition(tableName: string) {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST' as const,
    AttributeDefinitions: [
      { AttributeName: PK, AttributeType: 'S' as const },
      { AttributeName: SK, AttributeType: 'S' as const },
      { AttributeName: ACTIVITY_INDEX.partitionKey, AttributeType: 'S' as const },
      { AttributeName: ACTIVITY_INDEX.sortKey, AttributeType: 'S' as const },
    ],
    KeySchema: [
      { AttributeName: PK, KeyType: 'HASH' as const },
      { AttributeName: SK, KeyType: 'RANGE' as const },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: ACTIVITY_INDEX.name,
        KeySchema: [
          { AttributeName: ACTIVITY_INDEX.partitionKey, KeyType: 'HASH' as const },
          { AttributeName: ACTIVITY_INDEX.sortKey, KeyType: 'RANGE' as const },
        ],
        Projection: { ProjectionType: 'ALL' as const },
      },
    ],
  };
}
