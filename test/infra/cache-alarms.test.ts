import { beforeAll, describe, expect, it } from 'vitest';
import { METRICS_NAMESPACE, SERVICE_NAMES, STREAM_METRICS } from '../../functions/contracts/observability.ts';
import { type Resource, resourcesOf, synth } from './synth.ts';

// The cache block of lib/observability.ts: a refused sign-in and an unreachable cache page.
type AlarmMetric = {
  Id: string;
  Expression?: string;
  MetricStat?: {
    Metric: { Namespace: string; MetricName: string; Dimensions?: Array<{ Name: string; Value: unknown }> };
  };
};
let alarms: Array<[string, Resource]>;
let cacheOffAlarms: Array<[string, Resource]>;
beforeAll(() => {
  alarms = resourcesOf(synth({ alarmEmail: 'oncall@example.com' }).template, 'AWS::CloudWatch::Alarm');
  cacheOffAlarms = resourcesOf(synth({ cache: 'off' }).template, 'AWS::CloudWatch::Alarm');
}, 60_000);
const find = (list: Array<[string, Resource]>, name: string) =>
  list.find(([id]) => id.startsWith(`Observability${name}`))?.[1].Properties;

describe('cache alarms', () => {
  it("page on the function's refused sign-ins plus ElastiCache's AuthenticationFailures and IamAuthenticationThrottling for this cache", () => {
    const props = find(alarms, 'CacheAuthFailures');
    expect(props).toMatchObject({ Threshold: 0, DatapointsToAlarm: 2, EvaluationPeriods: 3 });
    const metrics = (props?.Metrics ?? []) as AlarmMetric[];
    const stats = metrics.flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric] : []));
    expect(stats).toContainEqual({
      Namespace: METRICS_NAMESPACE,
      MetricName: STREAM_METRICS.cacheAuthFailures,
      Dimensions: [{ Name: 'service', Value: SERVICE_NAMES.stream }],
    });
    const service = stats.filter((m) => m.Namespace === 'AWS/ElastiCache');
    // A throttled IAM AUTH leaves the connection unauthenticated just like a refused one (review N15).
    expect(service.map((m) => m.MetricName).sort()).toEqual([
      'AuthenticationFailures',
      'IamAuthenticationThrottling',
    ]);
    // The same cache the throttling alarm watches.
    const throttled = find(alarms, 'ValkeyThrottled') as
      | { Dimensions?: Array<{ Value: unknown }> }
      | undefined;
    expect(throttled?.Dimensions?.[0]?.Value).toBeTruthy();
    for (const metric of service) {
      expect(metric.Dimensions?.[0]?.Name).toBe('clusterId');
      expect(metric.Dimensions?.[0]?.Value).toEqual(throttled?.Dimensions?.[0]?.Value);
    }
    expect(metrics.find((m) => m.Expression)?.Expression).toBe(
      'FILL(runtime, 0) + FILL(service, 0) + FILL(throttled, 0)',
    );
    expect(JSON.stringify(props?.AlarmActions)).toContain('ObservabilityAlarms');
  });

  it('page when cache calls keep giving up because the cache is down', () => {
    const props = find(alarms, 'CacheUnavailable');
    expect(props).toMatchObject({
      MetricName: STREAM_METRICS.cacheUnavailable,
      Namespace: METRICS_NAMESPACE,
      Threshold: 0,
      DatapointsToAlarm: 3,
      EvaluationPeriods: 5,
    });
  });

  it('do not exist without a cache (chat:cache=off)', () => {
    expect(find(cacheOffAlarms, 'CacheAuthFailures')).toBeUndefined();
    expect(find(cacheOffAlarms, 'CacheUnavailable')).toBeUndefined();
  });
});
