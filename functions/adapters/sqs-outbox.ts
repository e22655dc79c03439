import { createHash } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { ChatMessage } from '../core/messages.ts';
import type { MessageOutbox } from '../core/ports.ts';
import { encodeQueueBody } from './sqs-message-codec.ts';

/** One FIFO group per conversation keeps its messages in order; ids over SQS's 128 chars are hashed. */
export function messageGroupId(userId: string, sessionId: string): string {
  const id = `${userId}:${sessionId}`;
  return id.length <= 128 && /^[\w!"#$%&'()*+,\-./:;<=>?@[\\\]^`{|}~]+$/.test(id)
    ? id
    : createHash('sha256').update(id).digest('hex');
}

/** The outbox in AWS: SQS FIFO, deduplicated by message id, so a retried send is never a second message. */
export class SqsMessageOutbox implements MessageOutbox {
  readonly #sqs: SQSClient;
  readonly #queueUrl: string;

  constructor(sqs: SQSClient, queueUrl: string) {
    this.#sqs = sqs;
    this.#queueUrl = queueUrl;
  }

  async send(message: ChatMessage): Promise<void> {
    await this.#sqs.send(
      new SendMessageCommand({
        QueueUrl: this.#queueUrl,
        // Escapes what SQS refuses (U+FFFE, U+FFFF), which a user may type: the send would fail otherwise.
        MessageBody: encodeQueueBody(message),
        MessageGroupId: messageGroupId(message.userId, message.sessionId),
        MessageDeduplicationId: message.messageId,
      }),
    );
  }
}
