import { processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { BedrockTitleWriter } from '../adapters/bedrock-titles.ts';
import { createDocumentClient, DynamoConversationStore } from '../adapters/dynamo-store.ts';
import { decodeQueueBody } from '../adapters/sqs-message-codec.ts';
import { METRICS_NAMESPACE, PERSIST_METRICS, SERVICE_NAMES } from '../contracts/observability.ts';
import { errorName } from '../core/background-writes.ts';
import { type ChatMessage, ChatMessageSchema } from '../core/messages.ts';
import { loadPersistConfig } from '../environment.ts';

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

const titles = config.TITLES
  ? new BedrockTitleWriter(
      new BedrockRuntimeClient({ requestHandler: { connectionTimeout: config.AWS_CONNECT_TIMEOUT_MS } }),
      config.TITLE_MODEL_ID,
      config.TITLE_MAX_TOKENS,
    )
  : undefined;

/** The first words of the first question stay the title when the model call fails: a title is never worth a retry. */
async function giveTitle(message: ChatMessage): Promise<void> {
  if (!titles) return;
  try {
    const [question] = await store.getRecentMessages(message.userId, message.sessionId, 2);
    const title = await titles.suggest(
      question?.role === 'user' ? question.content : '',
      message.content,
      AbortSignal.timeout(config.TITLE_TIMEOUT_MS),
    );
    if (title) await store.setGeneratedTitle(message.userId, message.sessionId, title);
  } catch (error) {
    logger.warn('title not generated, keeping the first words', {
      error: errorName(error),
    });
  }
}

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
  const recordHandler = async (record: SQSRecord) => {
    try {
      const message = parseRecord(record);
      const { outcome, firstAnswer } = await store.save(message);
      if (outcome === 'written') counts.persisted++;
      else if (outcome === 'duplicate') counts.duplicates++;
      else counts.discarded++;
      if (firstAnswer) await giveTitle(message);
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
  const skipped = response.batchItemFailures.length - counts.failed;
  logger.info('batch processed', { records: event.Records.length, ...counts, skipped });
  metrics.addMetric(PERSIST_METRICS.messagesPersisted, MetricUnit.Count, counts.persisted);
  metrics.addMetric(PERSIST_METRICS.duplicatesSkipped, MetricUnit.Count, counts.duplicates);
  metrics.addMetric(PERSIST_METRICS.persistFailures, MetricUnit.Count, counts.failed);
  metrics.addMetric(PERSIST_METRICS.messagesDiscarded, MetricUnit.Count, counts.discarded);
  metrics.publishStoredMetrics();
  return response;
}
