import { createHash } from 'node:crypto';
import {
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { ChatMessage } from '../core/messages.ts';
import type { MessageOutbox } from '../core/ports.ts';
import { encodeQueueBody } from './sqs-message-codec.ts';

/** SendMessageBatch's limits: 10 entries, and a total payload of 256 KiB (the classic quota, kept to be safe). */
const BATCH_ENTRIES = 10;
const BATCH_BYTES = 256 * 1024;

/** One FIFO group per conversation keeps its messages in order; ids over SQS's 128 chars are hashed. */
export function messageGroupId(userId: string, sessionId: string): string {
  const id = `${userId}:${sessionId}`;
  return id.length <= 128 && /^[\w!"#$%&'()*+,\-./:;<=>?@[\\\]^`{|}~]+$/.test(id)
    ? id
    : createHash('sha256').update(id).digest('hex');
}

interface Waiting {
  entry: Omit<SendMessageBatchRequestEntry, 'Id'>;
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** One entry SQS refused in a batch the queue otherwise took, named by SQS's code. */
class QueueEntryRefused extends Error {
  constructor(code: string | undefined, text: string | undefined) {
    super(text ?? 'the queue refused the message');
    this.name = code ?? 'QueueEntryRefused';
  }
}

/**
 * The outbox in AWS: SQS FIFO, deduplicated by message id, so a retried send is never a second message.
 * One request is in flight per execution environment: a send made while it is answered waits and
 * leaves with the others in the next batch. Alone (one turn per environment, Lambda's usual case) a
 * message leaves at once; under many concurrent streams the sends coalesce, where one request per
 * message cost each turn about 1.5 ms of CPU (signing, serializing, parsing). Sends leave in the order
 * they were made, so a conversation's messages reach the FIFO queue in order.
 */
export class SqsMessageOutbox implements MessageOutbox {
  readonly #sqs: SQSClient;
  readonly #queueUrl: string;
  readonly #waiting: Waiting[] = [];
  #sending = false;

  constructor(sqs: SQSClient, queueUrl: string) {
    this.#sqs = sqs;
    this.#queueUrl = queueUrl;
  }

  send(message: ChatMessage): Promise<void> {
    // Escapes what SQS refuses (U+FFFE, U+FFFF), which a user may type: the send would fail otherwise.
    const body = encodeQueueBody(message);
    return new Promise((resolve, reject) => {
      this.#waiting.push({
        entry: {
          MessageBody: body,
          MessageGroupId: messageGroupId(message.userId, message.sessionId),
          MessageDeduplicationId: message.messageId,
        },
        bytes: Buffer.byteLength(body),
        resolve,
        reject,
      });
      if (!this.#sending) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#sending = true;
    while (this.#waiting.length > 0) await this.#sendBatch(this.#nextBatch());
    this.#sending = false;
  }

  #nextBatch(): Waiting[] {
    let bytes = 0;
    let count = 0;
    for (const waiting of this.#waiting) {
      if (count === BATCH_ENTRIES || (count > 0 && bytes + waiting.bytes > BATCH_BYTES)) break;
      bytes += waiting.bytes;
      count++;
    }
    return this.#waiting.splice(0, count);
  }

  async #sendBatch(batch: Waiting[]): Promise<void> {
    try {
      const { Failed = [] } = await this.#sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.#queueUrl,
          Entries: batch.map((waiting, index) => ({ Id: String(index), ...waiting.entry })),
        }),
      );
      const refused = new Map(Failed.map((failure) => [failure.Id, failure]));
      batch.forEach((waiting, index) => {
        const failure = refused.get(String(index));
        if (failure) waiting.reject(new QueueEntryRefused(failure.Code, failure.Message));
        else waiting.resolve();
      });
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
    }
  }
}
