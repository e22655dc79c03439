import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { QUEUE_SETTINGS } from '../../functions/contracts/queue.ts';
import { lambdaContext } from './context.ts';

export type SqsHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | undefined>;

export interface PollerOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  handler: SqsHandler;
  functionName?: string;
  region?: string;
  batchSize?: number;
  waitTimeSeconds?: number;
  /** Batches in flight at most, as the event source's maximum concurrency (`QUEUE_SETTINGS.maxConcurrency`). */
  maxConcurrency?: number;
}

interface PollerStats {
  invocations: number;
  succeeded: number;
  failed: number;
  /** The most batches that were in flight at once. */
  peakConcurrency: number;
}

export interface SqsPoller {
  stats: PollerStats;
  stop(): Promise<void>;
}

function toRecord(message: Message, queueArn: string, region: string): SQSRecord {
  const attributes = message.Attributes ?? {};
  const messageAttributes: SQSRecord['messageAttributes'] = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = {
      dataType: value.DataType ?? 'String',
      stringListValues: [],
      binaryListValues: [],
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
      ...(value.BinaryValue !== undefined
        ? { binaryValue: Buffer.from(value.BinaryValue).toString('base64') }
        : {}),
    };
  }
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
      SentTimestamp: attributes.SentTimestamp ?? String(Date.now()),
      SenderId: attributes.SenderId ?? 'AIDALOCAL',
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
      ...(attributes.SequenceNumber ? { SequenceNumber: attributes.SequenceNumber } : {}),
      ...(attributes.MessageGroupId ? { MessageGroupId: attributes.MessageGroupId } : {}),
      ...(attributes.MessageDeduplicationId
        ? { MessageDeduplicationId: attributes.MessageDeduplicationId }
        : {}),
    },
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? '',
    ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

/**
 * The Lambda SQS event source, locally: long-polls, invokes the consumer with real SQS records,
 * deletes what succeeded and leaves `batchItemFailures` (or everything, if it throws) for redelivery
 * after the visibility timeout, where the queue's redrive policy moves them to the DLQ.
 *
 * It scales as Lambda's does for a FIFO queue: a receive that returns messages starts another receiver,
 * up to `maxConcurrency` batches in flight, and a receiver that finds the queue empty stops (one always
 * stays). Order within a message group holds because the queue hands out no message of a group while
 * another of that group is in flight.
 */
export function startSqsPoller(options: PollerOptions): SqsPoller {
  const { sqs, queueUrl, queueArn, handler, functionName = 'persist', region = 'us-east-1' } = options;
  const maxConcurrency = Math.max(1, options.maxConcurrency ?? QUEUE_SETTINGS.maxConcurrency);
  const stats: PollerStats = { invocations: 0, succeeded: 0, failed: 0, peakConcurrency: 0 };
  const abort = new AbortController();
  const receivers = new Set<Promise<void>>();
  /** Receivers that have not decided to stop (decided synchronously, so two idle ones never both stop). */
  let live = 0;
  let inFlight = 0;

  /** One receive and, when it returned messages, one invocation; the number of messages received. */
  const pollOnce = async (): Promise<number> => {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: options.batchSize ?? 10,
        WaitTimeSeconds: options.waitTimeSeconds ?? 20,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      { abortSignal: abort.signal },
    );
    if (Messages.length === 0) return 0;
    startReceiver();
    const records = Messages.map((m) => toRecord(m, queueArn, region));
    stats.invocations++;
    inFlight++;
    stats.peakConcurrency = Math.max(stats.peakConcurrency, inFlight);
    let failedIds: Set<string>;
    try {
      const response = await handler(
        { Records: records },
        lambdaContext({ functionName, timeoutMs: 30_000, memoryMb: 512 }),
      );
      failedIds = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch (error) {
      console.error(
        JSON.stringify({
          level: 'ERROR',
          message: 'consumer threw; the whole batch returns to the queue',
          error: String(error),
        }),
      );
      failedIds = new Set(records.map((r) => r.messageId));
    } finally {
      inFlight--;
    }
    const done = records.filter((r) => !failedIds.has(r.messageId));
    stats.succeeded += done.length;
    stats.failed += failedIds.size;
    if (done.length > 0) {
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
        }),
      );
    }
    return records.length;
  };

  const receive = async () => {
    while (!abort.signal.aborted) {
      try {
        const received = await pollOnce();
        if (received === 0 && live > 1) {
          live--;
          return;
        }
      } catch (error) {
        if (abort.signal.aborted) return;
        console.error(JSON.stringify({ level: 'ERROR', message: 'poll failed', error: String(error) }));
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };

  function startReceiver() {
    if (abort.signal.aborted || live >= maxConcurrency) return;
    live++;
    const receiver: Promise<void> = receive().finally(() => receivers.delete(receiver));
    receivers.add(receiver);
  }

  startReceiver();
  return {
    stats,
    async stop() {
      abort.abort();
      while (receivers.size > 0) await Promise.all(receivers);
    },
  };
}
