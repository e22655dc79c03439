import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { v7 as uuidv7 } from 'uuid';
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
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': `USER#${userId}#SESSION#${sessionId}` },
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
        new GetCommand({ TableName: tableName, Key: { pk: `USER#${userId}`, sk: `SESSION#${sessionId}` } }),
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
