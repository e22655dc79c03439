import { processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { S3Client } from '@aws-sdk/client-s3';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { createDocumentClient, DynamoConversationStore } from '../adapters/dynamo-store.ts';
import { S3AttachmentStore } from '../adapters/s3-attachments.ts';
import { decodeQueueBody } from '../adapters/sqs-message-codec.ts';
import { METRICS_NAMESPACE, PERSIST_METRICS, SERVICE_NAMES } from '../contracts/observability.ts';
import { type ChatMessage, ChatMessageSchema } from '../core/messages.ts';
import { loadPersistConfig } from '../environment.ts';
import { titleWriter } from './titles.ts';

const config = loadPersistConfig();
const logger = new Logger({ serviceName: SERVICE_NAMES.persist });
const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
  serviceName: SERVICE_NAMES.persist,
});
const store = new DynamoConversationStore(
  createDocumentClient({
    requestHandler: {
      connectionTimeout: config.AWS_CONNECT_TIMEOUT_MS,
      requestTimeout: config.AWS_REQUEST_TIMEOUT_MS,
    },
  }),
  config.TABLE_NAME,
  config.MESSAGE_TTL_DAYS,
);

const writeTitles = titleWriter(config, store, logger);
const attachments = config.ATTACHMENTS_BUCKET
  ? new S3AttachmentStore(
      new S3Client({
        forcePathStyle: config.ATTACHMENTS_PATH_STYLE,
        requestHandler: {
          connectionTimeout: config.AWS_CONNECT_TIMEOUT_MS,
          requestTimeout: config.AWS_REQUEST_TIMEOUT_MS,
        },
      }),
      config.ATTACHMENTS_BUCKET,
    )
  : undefined;

/** A record that can never succeed; it is reported failed so it reaches the DLQ without retries hiding it. */
class PoisonRecordError extends Error {
  override name = 'PoisonRecordError';
}

function parseRecord(record: SQSRecord) {
  let json: unknown;
  try {
    json = decodeQueueBody(record.body);
  } catch {
    throw new PoisonRecordError('body is not JSON');
  }
  const result = ChatMessageSchema.safeParse(json);
  if (!result.success) {
    throw new PoisonRecordError(
      `body does not match the message schema at ${result.error.issues[0]?.path.join('.') || 'root'}`,
    );
  }
  return result.data;
}

export async function handler(event: SQSEvent, context: Context): Promise<SQSBatchResponse> {
  logger.addContext(context);
  const counts = { persisted: 0, duplicates: 0, discarded: 0, failed: 0 };
  const firstAnswers: ChatMessage[] = [];
  const recordHandler = async (record: SQSRecord) => {
    try {
      const message = parseRecord(record);
      const { outcome, firstAnswer } = await store.save(message);
      // Its conversation was deleted (or its user erased) after the turn put its files: they go too.
      if (outcome === 'discarded' && message.attachments?.length)
        await attachments?.deleteRefs(message.attachments);
      if (outcome === 'written') counts.persisted++;
      else if (outcome === 'duplicate') counts.duplicates++;
      else counts.discarded++;
      if (firstAnswer) firstAnswers.push(message);
      return outcome;
    } catch (error) {
      counts.failed++;
      logger.error('record not persisted', {
        messageId: record.messageId,
        receiveCount: record.attributes.ApproximateReceiveCount,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      });
      throw error;
    }
  };
  // FIFO semantics: after the first failure in a message group the rest of that group is reported
  // failed too (order is kept), while other groups go on.
  const response = await processPartialResponse(event, recordHandler, new SqsFifoPartialProcessorAsync(), {
    context,
    skipGroupOnError: true,
    throwOnFullBatchFailure: false,
  });
  await writeTitles(firstAnswers);
  const skipped = response.batchItemFailures.length - counts.failed;
  logger.info('batch processed', { records: event.Records.length, ...counts, skipped });
  metrics.addMetric(PERSIST_METRICS.messagesPersisted, MetricUnit.Count, counts.persisted);
  metrics.addMetric(PERSIST_METRICS.duplicatesSkipped, MetricUnit.Count, counts.duplicates);
  metrics.addMetric(PERSIST_METRICS.persistFailures, MetricUnit.Count, counts.failed);
  metrics.addMetric(PERSIST_METRICS.messagesDiscarded, MetricUnit.Count, counts.discarded);
  metrics.publishStoredMetrics();
  return response;
}
