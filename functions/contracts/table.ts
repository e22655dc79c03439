/**
 * The single table's shape and every key the runtime, the CDK stack, the local stack and the tests use.
 * Every key starts with the verified user id, so one user can never reach another's items.
 */
export const TABLE_KEYS = { partitionKey: 'pk', sortKey: 'sk' } as const;

/** Epoch seconds after which DynamoDB TTL deletes an item. */
export const TTL_ATTRIBUTE = 'expiresAt';

const { partitionKey: PK, sortKey: SK } = TABLE_KEYS;

export const tableKeys = {
  userPartition: (userId: string) => `USER#${userId}`,
  profile: (userId: string) => ({ [PK]: `USER#${userId}`, [SK]: 'PROFILE' }),
  session: (userId: string, sessionId: string) => ({ [PK]: `USER#${userId}`, [SK]: `SESSION#${sessionId}` }),
  sessionPrefix: 'SESSION#',
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
    ],
    KeySchema: [
      { AttributeName: PK, KeyType: 'HASH' as const },
      { AttributeName: SK, KeyType: 'RANGE' as const },
    ],
  };
}
