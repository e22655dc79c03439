import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { STREAM_METRICS } from '../contracts/observability.ts';
import type { BackgroundReport, TurnReport } from '../core/turn-events.ts';

/**
 * Publishes what the dashboard and alarms read, under the names in the shared contracts. Each call
 * stores and flushes in one synchronous block: Powertools' middleware would flush before a streamed
 * body ends, and concurrent requests in one environment must not mix their metrics.
 */
export class TurnMetrics {
  readonly #metrics: Metrics;

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
  }

  publishTurn(report: TurnReport, background: BackgroundReport): void {
    const m = this.#metrics;
    const { timings, cache } = report;
    m.addMetric(STREAM_METRICS.turns, MetricUnit.Count, 1);
    m.addMetric(STREAM_METRICS.turnErrors, MetricUnit.Count, report.outcome === 'error' ? 1 : 0);
    m.addMetric(STREAM_METRICS.firstByte, MetricUnit.Milliseconds, timings.first_byte_ms);
    if (timings.model_first_token_ms > 0) {
      m.addMetric(STREAM_METRICS.timeToFirstToken, MetricUnit.Milliseconds, timings.model_first_token_ms);
      m.addMetric(STREAM_METRICS.modelTimeToFirstToken, MetricUnit.Milliseconds, timings.model_latency_ms);
    }
    m.addMetric(STREAM_METRICS.contextLoad, MetricUnit.Milliseconds, timings.context_ms);
    if (cache.rag !== 'skipped') {
      m.addMetric(STREAM_METRICS.ragRetrieval, MetricUnit.Milliseconds, timings.rag_ms);
      m.addMetric(STREAM_METRICS.retrievalFailures, MetricUnit.Count, report.retrievalFailed ? 1 : 0);
    }
    m.addMetric(STREAM_METRICS.turnDuration, MetricUnit.Milliseconds, timings.total_ms);
    m.addMetric(
      STREAM_METRICS.modelCacheReadTokens,
      MetricUnit.Count,
      report.usage.cache_read_input_tokens ?? 0,
    );
    m.addMetric(
      STREAM_METRICS.modelCacheWriteTokens,
      MetricUnit.Count,
      report.usage.cache_write_input_tokens ?? 0,
    );
    for (const kind of ['profile', 'history', 'rag'] as const) {
      const state = cache[kind];
      if (state === 'hit') m.addMetric(STREAM_METRICS.cacheHit(kind), MetricUnit.Count, 1);
      else if (state === 'miss') m.addMetric(STREAM_METRICS.cacheMiss(kind), MetricUnit.Count, 1);
    }
    m.addMetric(STREAM_METRICS.backgroundSaves, MetricUnit.Count, background.saves);
    m.addMetric(STREAM_METRICS.failedBackgroundSaves, MetricUnit.Count, background.failedSaves);
    m.publishStoredMetrics();
  }

  countUnknownKey(): void {
    this.#count(STREAM_METRICS.unknownKeyRejections);
  }

  countLimitRejection(): void {
    this.#count(STREAM_METRICS.limitRejections);
  }

  countLimiterFallback(): void {
    this.#count(STREAM_METRICS.limiterFallbacks);
  }

  countCacheEvent(event: 'unavailable' | 'authFailure'): void {
    this.#count(event === 'unavailable' ? STREAM_METRICS.cacheUnavailable : STREAM_METRICS.cacheAuthFailures);
  }

  countFeedback(rating: 'up' | 'down'): void {
    this.#count(rating === 'up' ? STREAM_METRICS.feedbackPositive : STREAM_METRICS.feedbackNegative);
  }

  #count(name: string): void {
    this.#metrics.addMetric(name, MetricUnit.Count, 1);
    this.#metrics.publishStoredMetrics();
  }
}
