import { createHash } from 'node:crypto';
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { type FauxqsServer, startFauxqs } from 'fauxqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localClientConfig } from '../../local/client-config.ts';
import { startSqsPoller } from '../../local/sqs-poller.ts';
import { waitFor } from '../support/wait.ts';

let fauxqs: FauxqsServer;
let sqs: SQSClient;

beforeAll(async () => {
  fauxqs = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false });
  sqs = new SQSClient(localClientConfig(`http://127.0.0.1:${fauxqs.port}`));
});
afterAll(async () => {
  sqs.destroy();
  await fauxqs.stop();
});

describe('SQS event-source poller (fauxqs)', () => {
  it('invokes with real SQS records, redelivers a failed record and moves it to the DLQ after maxReceiveCount', async () => {
    const dlq = fauxqs.createQueue('poller-dlq.fifo', { attributes: { FifoQueue: 'true' } });
    const queue = fauxqs.createQueue('poller.fifo', {
      attributes: {
        FifoQueue: 'true',
        VisibilityTimeout: '1',
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.queueArn, maxReceiveCount: 3 }),
      },
    });
    const base = `http://127.0.0.1:${fauxqs.port}/000000000000`;
    for (const body of ['good', 'bad']) {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: `${base}/poller.fifo`,
          MessageBody: body,
          MessageGroupId: body,
          MessageDeduplicationId: body,
          MessageAttributes: { kind: { DataType: 'String', StringValue: body } },
        }),
      );
    }
    const seen: SQSEvent['Records'] = [];
    const poller = startSqsPoller({
      sqs,
      queueUrl: `${base}/poller.fifo`,
      queueArn: queue.queueArn,
      waitTimeSeconds: 1,
      handler: async (event) => {
        seen.push(...event.Records);
        return {
          batchItemFailures: event.Records.filter((r) => r.body === 'bad').map((r) => ({
            itemIdentifier: r.messageId,
          })),
        };
      },
    });
    try {
      await waitFor(
        async () => {
          const { Messages = [] } = await sqs.send(
            new ReceiveMessageCommand({ QueueUrl: `${base}/poller-dlq.fifo`, WaitTimeSeconds: 0 }),
          );
          return Messages.find((m) => m.Body === 'bad');
        },
        20_000,
        'the failed record in the DLQ',
      );
    } finally {
      await poller.stop();
    }
    const bad = seen.filter((r) => r.body === 'bad');
    expect(bad.map((r) => r.attributes.ApproximateReceiveCount)).toEqual(['1', '2', '3']);
    expect(seen.filter((r) => r.body === 'good')).toHaveLength(1);
    const record = seen[0];
    expect(record).toMatchObject({
      eventSource: 'aws:sqs',
      eventSourceARN: queue.queueArn,
      awsRegion: 'us-east-1',
      attributes: { MessageGroupId: expect.any(String), MessageDeduplicationId: expect.any(String) },
      messageAttributes: { kind: { dataType: 'String', stringValue: record?.body } },
    });
    expect(record?.md5OfBody).toBe(
      createHash('md5')
        .update(record?.body ?? '', 'utf8')
        .digest('hex'),
    );
    expect(record?.receiptHandle.length).toBeGreaterThan(0);
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: `${base}/poller.fifo`,
        AttributeNames: ['ApproximateNumberOfMessages'],
      }),
    );
    expect(Attributes?.ApproximateNumberOfMessages).toBe('0');
  });
});
