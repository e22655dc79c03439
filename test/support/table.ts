import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { v7 as uuidv7 } from 'uuid';
import { TABLE_KEYS, tableKeys } from '../../functions/contracts/table.ts';
import type { ChatMessage } from '../../functions/core/messages.ts';

export function tableReader(client: DynamoDBClient, tableName: string) {
  const doc = DynamoDBDocumentClient.from(client);
  return {
    async messages(userId: string, sessionId: string) {
      const items: Record<string, unknown>[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const page = await doc.send(
          new QueryCommand({
            TableName: tableName,
            KeyConditionExpression: '#pk = :pk',
            ExpressionAttributeNames: { '#pk': TABLE_KEYS.partitionKey },
            ExpressionAttributeValues: { ':pk': tableKeys.messagePartition(userId, sessionId) },
            ExclusiveStartKey: start,
          }),
        );
        items.push(...(page.Items ?? []));
        start = page.LastEvaluatedKey;
      } while (start);
      return items;
    },
    async session(userId: string, sessionId: string) {
      const { Item } = await doc.send(
        new GetCommand({ TableName: tableName, Key: tableKeys.session(userId, sessionId) }),
      );
      return Item;
    },
  };
}

export function chatMessage(
  userId: string,
  sessionId: string,
  index: number,
  overrides: Partial<ChatMessage> = {},
): ChatMessage {
  return {
    messageId: uuidv7(),
    sessionId,
    userId,
    role: index % 2 === 0 ? 'user' : 'assistant',
    content: `message ${index}`,
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}
