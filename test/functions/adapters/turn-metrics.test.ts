import type { Metrics } from '@aws-lambda-powertools/metrics';
import { describe, expect, it } from 'vitest';
import { TurnMetrics } from '../../../functions/adapters/turn-metrics.ts';
import { STREAM_METRICS } from '../../../functions/contracts/observability.ts';
import type { TurnReport } from '../../../functions/core/turn-events.ts';

/** Records what would be published: name, value, and which flush it belonged to. */
function recordingMetrics() {
  const published: Array<Array<{ name: string; value: number }>> = [];
  let stored: Array<{ name: string; value: number }> = [];
  const fake = {
    addMetric: (name: string, _unit: string, value: number) => stored.push({ name, value }),
    publishStoredMetrics: () => {
      published.push(stored);
      stored = [];
    },
  };
  return { metrics: new TurnMetrics(fake as unknown as Metrics), published };
}

const report = (overrides: Partial<TurnReport>): TurnReport => ({
  userId: 'u',
  sessionId: 's',
  outcome: 'done',
  timings: {
    first_byte_ms: 1,
    context_ms: 2,
    rag_ms: 3,
    model_first_token_ms: 40,
    model_latency_ms: 30,
    total_ms: 90,
  },
  cache: { profile: 'hit', history: 'miss', rag: 'miss' },
  usage: { input_tokens: 10, output_tokens: 5 },
  retrievalFailed: false,
  background: Promise.resolve({ saves: 2, failedSaves: 0 }),
  ...overrides,
});

describe('TurnMetrics: what the dashboard and alarms read', () => {
  it('counts a model outage as a turn and a turn error, so the error-rate alarm sees it', () => {
    const { metrics, published } = recordingMetrics();
    metrics.publishTurn(report({ outcome: 'error', errorCode: 'model_error' }), { saves: 1, failedSaves: 0 });
    const names = Object.fromEntries((published[0] ?? []).map((m) => [m.name, m.value]));
    expect(names[STREAM_METRICS.turns]).toBe(1);
    expect(names[STREAM_METRICS.turnErrors]).toBe(1);
  });

  it('reports model TTFT apart from the request TTFT, and a retrieval failure as a rate datapoint', () => {
    const { metrics, published } = recordingMetrics();
    metrics.publishTurn(report({ retrievalFailed: true }), { saves: 2, failedSaves: 1 });
    const names = Object.fromEntries((published[0] ?? []).map((m) => [m.name, m.value]));
    expect(names[STREAM_METRICS.modelTimeToFirstToken]).toBe(30);
    expect(names[STREAM_METRICS.timeToFirstToken]).toBe(40);
    expect(names[STREAM_METRICS.retrievalFailures]).toBe(1);
    expect(names[STREAM_METRICS.turnErrors]).toBe(0);
    expect(names[STREAM_METRICS.failedBackgroundSaves]).toBe(1);
  });

  it('emits every metric name of the contract on some path, each flush on its own', () => {
    const { metrics, published } = recordingMetrics();
    metrics.publishTurn(report({}), { saves: 2, failedSaves: 0 });
    metrics.publishTurn(report({ cache: { profile: 'miss', history: 'hit', rag: 'hit' } }), {
      saves: 2,
      failedSaves: 0,
    });
    metrics.countUnknownKey();
    metrics.countLimitRejection();
    metrics.countLimiterFallback();
    metrics.countCacheEvent('unavailable');
    metrics.countCacheEvent('authFailure');
    metrics.countFeedback('up');
    metrics.countFeedback('down');
    expect(published).toHaveLength(9);
    const emitted = new Set(published.flat().map((m) => m.name));
    const contract = Object.values(STREAM_METRICS).flatMap((entry) =>
      typeof entry === 'function' ? (['profile', 'history', 'rag'] as const).map((k) => entry(k)) : [entry],
    );
    expect(contract.filter((name) => !emitted.has(name))).toEqual([]);
  });
});
