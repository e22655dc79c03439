/** The message queue and its consumer, as the stream function, the CDK stack and the local poller see them. */
const CONSUMER_TIMEOUT_SECONDS = 30;

export const QUEUE_SETTINGS = {
  maxReceiveCount: 5,
  consumerTimeoutSeconds: CONSUMER_TIMEOUT_SECONDS,
  /** AWS advises a visibility timeout of at least 6 x the consumer timeout for SQS event sources. */
  visibilityTimeoutSeconds: 6 * CONSUMER_TIMEOUT_SECONDS,
  batchSize: 10,
  /**
   * Batches the event source runs at once (its `maxConcurrency`, set on the stack's event source mapping
   * and on the local poller): for a FIFO queue Lambda runs one per active message group up to this, each
   * group's messages in order. Every conversation is a group, so a burst of new conversations is written
   * this many batches at a time (bench `--parts persist`).
   */
  maxConcurrency: 20,
  retentionSeconds: 14 * 24 * 3600,
} as const;
