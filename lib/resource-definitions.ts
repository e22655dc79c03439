/**
 * Resource shapes shared by the CDK stack and the local stack, so both create the same table and
 * queues (one source of truth). No CDK or SDK imports here.
 */
export const TABLE_KEYS = { partitionKey: 'pk', sortKey: 'sk' } as const;
export const TTL_ATTRIBUTE = 'expiresAt';

export const QUEUE_SETTINGS = {
  maxReceiveCount: 5,
  consumerTimeoutSeconds: 30,
  /** AWS advises a visibility timeout of at least 6 x the consumer timeout for SQS event sources. */
  visibilityTimeoutSeconds: 6 * 30,
  batchSize: 10,
  retentionSeconds: 14 * 24 * 3600,
} as const;

/** The table as a CreateTable input (the local stack sends this to dynalite). */
export function tableDefinition(tableName: string) {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST' as const,
    AttributeDefinitions: [
      { AttributeName: TABLE_KEYS.partitionKey, AttributeType: 'S' as const },
      { AttributeName: TABLE_KEYS.sortKey, AttributeType: 'S' as const },
    ],
    KeySchema: [
      { AttributeName: TABLE_KEYS.partitionKey, KeyType: 'HASH' as const },
      { AttributeName: TABLE_KEYS.sortKey, KeyType: 'RANGE' as const },
    ],
  };
}
