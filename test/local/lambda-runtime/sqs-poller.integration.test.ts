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
import { startSqsPoller } from '../../../local/lambda-runtime/sqs-poller.ts';
import { localClientConfig } from '../../../local/stack/client-config.ts';
import { waitFor } from '../../support/wait.ts';

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

  it('runs batches of different message groups at once, up to maxConcurrency, each group in order', async () => {
    const queue = fauxqs.createQueue('poller-groups.fifo', {
      attributes: { FifoQueue: 'true', VisibilityTimeout: '120' },
    });
    const url = `http://127.0.0.1:${fauxqs.port}/000000000000/poller-groups.fifo`;
    const groups = Array.from({ length: 12 }, (_, g) => `group-${g}`);
    for (const group of groups) {
      for (let i = 0; i < 3; i++) {
        await sqs.send(
          new SendMessageCommand({
            QueueUrl: url,
            MessageBody: `${group}:${i}`,
            MessageGroupId: group,
            MessageDeduplicationId: `${group}:${i}`,
          }),
        );
      }
    }
    const maxConcurrency = 4;
    const handled: string[] = [];
    let inFlight = 0;
    let peak = 0;
    const poller = startSqsPoller({
      sqs,
      queueUrl: url,
      queueArn: queue.queueArn,
      waitTimeSeconds: 1,
      batchSize: 2,
      maxConcurrency,
      handler: async (event) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        // Each batch stays open until the poller has had maxConcurrency batches open at once: a poller
        // that runs one batch at a time never gets there, and each batch then waits out the budget.
        await waitFor(async () => peak >= maxConcurrency, 20_000, 'concurrent batches').catch(
          () => undefined,
        );
        handled.push(...event.Records.map((r) => r.body));
        inFlight--;
        return { batchItemFailures: [] };
      },
    });
    try {
      await waitFor(async () => handled.length === 36, 60_000, 'all 36 messages handled');
    } finally {
      await poller.stop();
    }
    expect(peak).toBe(maxConcurrency);
    expect(poller.stats.peakConcurrency).toBe(maxConcurrency);
    expect([...handled].sort()).toEqual(groups.flatMap((g) => [0, 1, 2].map((i) => `${g}:${i}`)).sort());
    for (const group of groups) {
      expect(handled.filter((body) => body.startsWith(`${group}:`))).toEqual(
        [0, 1, 2].map((i) => `${group}:${i}`),
      );
    }
  }, 120_000);
});
