import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  METRICS_NAMESPACE,
  PERSIST_METRICS,
  SERVICE_NAMES,
  STREAM_METRICS,
} from '../../functions/contracts/observability.ts';
import { NO_FIRST_TOKEN_MS, RATE_ALARM_FLOORS } from '../../lib/observability.ts';
import { type Resource, resourcesOf, type Statement, type Synthesized, synth } from './synth.ts';

// What the handlers publish, by service: the only names an alarm or a graph may read in our namespace.
const CACHE_KINDS = ['profile', 'history', 'rag'] as const;
const EMITTED: Record<string, string[]> = {
  [SERVICE_NAMES.stream]: [
    ...Object.values(STREAM_METRICS).filter((v) => typeof v === 'string'),
    ...CACHE_KINDS.flatMap((kind) => [STREAM_METRICS.cacheHit(kind), STREAM_METRICS.cacheMiss(kind)]),
  ],
  [SERVICE_NAMES.persist]: Object.values(PERSIST_METRICS),
};

let withEmail: Synthesized;
let noEmail: Synthesized;
let production: Synthesized;
let alarms: Array<[string, Resource]>;

type MetricStat = {
  Metric: { Namespace: string; MetricName: string; Dimensions?: Array<{ Name: string; Value: unknown }> };
  Stat: string;
};
type AlarmMetric = { Id: string; Expression?: string; MetricStat?: MetricStat; ReturnData?: boolean };
const metricsOf = (alarm: Resource) => (alarm.Properties.Metrics ?? []) as AlarmMetric[];
const alarm = (name: string) => {
  const found = alarms.find(([id]) => id.startsWith(`Observability${name}`));
  if (!found) throw new Error(`no alarm ${name}`);
  return found[1].Properties;
};
const expressionOf = (name: string) =>
  metricsOf({ Properties: alarm(name) } as Resource).find((m) => m.Expression);
/**
 * Evaluates an alarm's metric-math expression for one datapoint, `values` by metric name (a missing
 * metric is CloudWatch's "no data"). IF, FILL, comparisons and arithmetic read the same in JavaScript.
 */
const evaluate = (name: string, values: Record<string, number | undefined>) => {
  const metrics = metricsOf({ Properties: alarm(name) } as Resource);
  const ids = metrics.filter((m) => m.MetricStat).map((m) => m.Id);
  const args = metrics
    .filter((m) => m.MetricStat)
    .map((m) => values[m.MetricStat?.Metric.MetricName ?? ''] ?? Number.NaN);
  const body = `return ${String(expressionOf(name)?.Expression)}`;
  const fn = new Function('IF', 'FILL', ...ids, body) as (...a: unknown[]) => number;
  return fn(
    (condition: boolean, then: number, otherwise: number) => (condition ? then : otherwise),
    (value: number, fill: number) => (Number.isNaN(value) ? fill : value),
    ...args,
  );
};
const namesIn = (name: string) =>
  metricsOf({ Properties: alarm(name) } as Resource).flatMap((m) =>
    m.MetricStat ? [m.MetricStat.Metric.MetricName] : [],
  );

beforeAll(() => {
  withEmail = synth({ alarmEmail: 'oncall@example.com' });
  noEmail = synth();
  production = synth({ production: true });
  alarms = resourcesOf(withEmail.template, 'AWS::CloudWatch::Alarm');
}, 60_000);

describe('alarm topic', () => {
  it('is encrypted with a key of its own (rotated) whose policy lets CloudWatch use it, never alias/aws/sns', () => {
    const [[keyId, key]] = resourcesOf(withEmail.template, 'AWS::KMS::Key') as [[string, Resource]];
    expect(key.Properties.EnableKeyRotation).toBe(true);
    const [[, topic]] = resourcesOf(withEmail.template, 'AWS::SNS::Topic') as [[string, Resource]];
    expect(topic.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    expect(JSON.stringify(withEmail.template.toJSON())).not.toContain('alias/aws/sns');
    const statements = (key.Properties.KeyPolicy as { Statement: Statement[] }).Statement;
    const encrypt = statements.find((s) => s.Sid === 'CloudWatchAlarmsEncrypt');
    expect(encrypt).toMatchObject({
      Effect: 'Allow',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      Resource: '*',
      // Confused deputy: CloudWatch may use the key only for this account's alarms of this stack.
      Condition: {
        StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
        ArnLike: { 'aws:SourceArn': expect.anything() },
      },
    });
    expect(JSON.stringify(encrypt?.Condition?.ArnLike)).toMatch(/:cloudwatch:.*:alarm:StreamingChat-\*/);
  });

  it("has a policy that lets CloudWatch publish, only for this account's alarms of this stack, beside the TLS deny", () => {
    const [[topicId]] = resourcesOf(withEmail.template, 'AWS::SNS::Topic') as [[string, Resource]];
    const [[, policy]] = resourcesOf(withEmail.template, 'AWS::SNS::TopicPolicy') as [[string, Resource]];
    const statements = (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
    const publish = statements.find((s) => s.Sid === 'CloudWatchAlarmsPublish');
    expect(publish).toMatchObject({
      Effect: 'Allow',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: 'sns:Publish',
      Resource: { Ref: topicId },
      Condition: {
        StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
        ArnLike: { 'aws:SourceArn': expect.anything() },
      },
    });
    expect(JSON.stringify(publish?.Condition?.ArnLike)).toMatch(/:cloudwatch:.*:alarm:StreamingChat-\*/);
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
  });

  it('subscribes chat:alarmEmail; without it the synth warns loudly, and under chat:production=true it fails', () => {
    withEmail.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
    const paging = (text: string) => text.includes('NO ONE WILL BE PAGED');
    expect(withEmail.messages('warning').filter((m) => paging(m.text))).toEqual([]);
    noEmail.template.resourceCountIs('AWS::SNS::Subscription', 0);
    expect(noEmail.messages('warning').filter((m) => paging(m.text))).toEqual([
      { path: 'StreamingChat/Observability', text: expect.stringContaining('-c chat:alarmEmail=') },
    ]);
    expect(noEmail.messages('error')).toEqual([]);
    expect(production.messages('error')).toContainEqual({
      path: 'StreamingChat/Observability',
      text: expect.stringContaining('chat:production=true needs chat:alarmEmail'),
    });
  });
});

describe('alarms', () => {
  it('notify the topic when they fire and when they resolve, each with a one-line reason for its threshold and period', () => {
    expect(alarms.length).toBe(18);
    for (const [id, { Properties }] of alarms) {
      expect(JSON.stringify(Properties.AlarmActions), id).toContain('ObservabilityAlarms');
      expect(Properties.OKActions, id).toEqual(Properties.AlarmActions);
      expect(String(Properties.AlarmDescription).length, id).toBeGreaterThan(40);
      expect(String(Properties.AlarmName), id).toMatch(/^StreamingChat-/);
    }
  });

  it('read our namespace only through names the handlers publish, with the publishing service as dimension', () => {
    let checked = 0;
    for (const [id, { Properties }] of alarms) {
      const stats: MetricStat['Metric'][] = [
        ...(Properties.MetricName
          ? [
              {
                Namespace: String(Properties.Namespace),
                MetricName: String(Properties.MetricName),
                Dimensions: Properties.Dimensions as MetricStat['Metric']['Dimensions'],
              },
            ]
          : []),
        ...metricsOf({ Properties } as Resource).flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric] : [])),
      ];
      for (const metric of stats.filter((m) => m.Namespace === METRICS_NAMESPACE)) {
        const service = String(metric.Dimensions?.find((d) => d.Name === 'service')?.Value);
        expect(EMITTED[service], `${id}: service ${service}`).toBeDefined();
        expect(EMITTED[service], `${id}: ${metric.MetricName}`).toContain(metric.MetricName);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(8);
  });

  it('alarm on the turn error rate (TurnErrors / Turns), above 10 % in 3 of 5 minutes', () => {
    expect(alarm('TurnErrorRate')).toMatchObject({
      Threshold: 10,
      DatapointsToAlarm: 3,
      EvaluationPeriods: 5,
    });
    expect(namesIn('TurnErrorRate').sort()).toEqual([STREAM_METRICS.turnErrors, STREAM_METRICS.turns]);
    const turnErrorRate = (turnErrors: number | undefined, turns: number | undefined) =>
      evaluate('TurnErrorRate', {
        [STREAM_METRICS.turnErrors]: turnErrors,
        [STREAM_METRICS.turns]: turns,
      });
    // One user whose conversation overflows the context window: every turn fails, 4 a minute, alone.
    expect(turnErrorRate(4, 4)).toBe(0);
    expect(turnErrorRate(RATE_ALARM_FLOORS.events, 50)).toBe(10);
    expect(turnErrorRate(20, 100)).toBe(20);
    expect(turnErrorRate(undefined, 100)).toBe(0);
    expect(turnErrorRate(undefined, undefined)).toBe(0);
  });

  it('never let one user page through a rate: every rate alarm has an absolute floor of events a minute', () => {
    const floors: Array<[string, Record<string, number>, Record<string, number>]> = [
      [
        'RetrievalFailureRate',
        { [STREAM_METRICS.retrievalFailures]: 4, [STREAM_METRICS.turns]: 4 },
        { [STREAM_METRICS.retrievalFailures]: 5, [STREAM_METRICS.turns]: 10 },
      ],
      [
        'FailedSaveRate',
        { [STREAM_METRICS.failedBackgroundSaves]: 4, [STREAM_METRICS.backgroundSaves]: 4 },
        { [STREAM_METRICS.failedBackgroundSaves]: 5, [STREAM_METRICS.backgroundSaves]: 10 },
      ],
      ['StreamErrorRate', { Errors: 4, Invocations: 4 }, { Errors: 5, Invocations: 10 }],
      ['PersistThrottleRate', { Throttles: 4, Invocations: 0 }, { Throttles: 5, Invocations: 5 }],
    ];
    for (const [name, oneUser, many] of floors) {
      expect(evaluate(name, oneUser), name).toBe(0);
      expect(evaluate(name, many), name).toBe(50);
    }
  });

  it('alarm on the retrieval failure rate and the failed background save rate, never on single events', () => {
    expect(alarm('RetrievalFailureRate')).toMatchObject({
      Threshold: 10,
      DatapointsToAlarm: 3,
      EvaluationPeriods: 5,
    });
    expect(namesIn('RetrievalFailureRate').sort()).toEqual([
      STREAM_METRICS.retrievalFailures,
      STREAM_METRICS.turns,
    ]);
    expect(alarm('FailedSaveRate')).toMatchObject({
      Threshold: 5,
      DatapointsToAlarm: 3,
      EvaluationPeriods: 5,
    });
    expect(namesIn('FailedSaveRate').sort()).toEqual([
      STREAM_METRICS.backgroundSaves,
      STREAM_METRICS.failedBackgroundSaves,
    ]);
  });

  it('alarm on model TTFT p99 (from the model call) for 15 minutes, and treat turns without a first token as breaching', () => {
    expect(alarm('ModelTtftP99')).toMatchObject({
      Threshold: 1500,
      DatapointsToAlarm: 3,
      EvaluationPeriods: 3,
    });
    const metrics = metricsOf({ Properties: alarm('ModelTtftP99') } as Resource);
    const ttft = metrics.find(
      (m) => m.MetricStat?.Metric.MetricName === STREAM_METRICS.modelTimeToFirstToken,
    );
    expect(ttft?.MetricStat?.Stat).toBe('p99');
    const turns = metrics.find((m) => m.MetricStat?.Metric.MetricName === STREAM_METRICS.turns);
    expect(expressionOf('ModelTtftP99')?.Expression).toBe(
      `IF(FILL(${turns?.Id}, 0) > 0, FILL(${ttft?.Id}, ${NO_FIRST_TOKEN_MS}), 0)`,
    );
    expect(NO_FIRST_TOKEN_MS).toBeGreaterThan(1500);
    // The request-level TimeToFirstToken (retrieval included) is graphed, not alarmed.
    expect(JSON.stringify(alarms)).not.toContain(`"${STREAM_METRICS.timeToFirstToken}"`);
  });

  it('alarm on the dead-letter queue, the queue age, unknown-key rejections and Valkey throttling', () => {
    expect(alarm('DlqNotEmpty')).toMatchObject({
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 0,
      EvaluationPeriods: 1,
    });
    expect(alarm('QueueAge')).toMatchObject({ MetricName: 'ApproximateAgeOfOldestMessage', Threshold: 300 });
    expect(alarm('UnknownKeyRejections')).toMatchObject({
      MetricName: STREAM_METRICS.unknownKeyRejections,
      Namespace: METRICS_NAMESPACE,
      Statistic: 'Sum',
      Threshold: 20,
      EvaluationPeriods: 2,
    });
    const [[, cache]] = resourcesOf(withEmail.template, 'AWS::ElastiCache::ServerlessCache') as [
      [string, Resource],
    ];
    expect(alarm('ValkeyThrottled')).toMatchObject({
      Namespace: 'AWS/ElastiCache',
      MetricName: 'ThrottledCmds',
      Dimensions: [{ Name: 'clusterId', Value: cache.Properties.ServerlessCacheName }],
      DatapointsToAlarm: 3,
      EvaluationPeriods: 5,
    });
  });

  it('alarm on the share of chat requests refused by a per-user limit, above 20 % in 3 of 5 minutes', () => {
    expect(alarm('LimitRejectionRate')).toMatchObject({
      Threshold: 20,
      DatapointsToAlarm: 3,
      EvaluationPeriods: 5,
    });
    // Refused requests are not turns: the denominator is turns plus refusals.
    expect(namesIn('LimitRejectionRate').sort()).toEqual([
      STREAM_METRICS.limitRejections,
      STREAM_METRICS.turns,
    ]);
    const refusedShare = (refused: number | undefined, turns: number | undefined) =>
      evaluate('LimitRejectionRate', {
        [STREAM_METRICS.limitRejections]: refused,
        [STREAM_METRICS.turns]: turns,
      });
    // The review's case: one script retrying at night, 15 requests a minute against a limit of 10.
    expect(refusedShare(5, 10)).toBe(0);
    expect(refusedShare(RATE_ALARM_FLOORS.limitRejections - 1, undefined)).toBe(0);
    expect(refusedShare(RATE_ALARM_FLOORS.limitRejections, 80)).toBe(20);
    expect(refusedShare(30, undefined)).toBe(100);
    expect(refusedShare(undefined, 100)).toBe(0);
  });

  it('alarm when the scheduled JWKS refresh keeps failing', () => {
    expect(alarm('JwksRefreshFailures')).toMatchObject({
      MetricName: 'Errors',
      Namespace: 'AWS/Lambda',
      Threshold: 0,
      DatapointsToAlarm: 2,
      EvaluationPeriods: 2,
    });
    expect(JSON.stringify(alarm('JwksRefreshFailures').Dimensions)).toContain('AuthJwksRefreshFunction');
  });

  it('alarm when per-user limits fall back to memory because Valkey did not answer, in 3 of 5 minutes', () => {
    expect(alarm('LimiterFallbacks')).toMatchObject({
      MetricName: STREAM_METRICS.limiterFallbacks,
      Namespace: METRICS_NAMESPACE,
      Dimensions: [{ Name: 'service', Value: SERVICE_NAMES.stream }],
      Statistic: 'Sum',
      Threshold: 0,
      DatapointsToAlarm: 3,
      EvaluationPeriods: 5,
    });
  });

  it('alarm on function error and throttle rates, and only the dead-letter queue on one datapoint', () => {
    for (const name of ['Stream', 'Persist']) {
      expect(namesIn(`${name}ErrorRate`).sort()).toEqual(['Errors', 'Invocations']);
      expect(namesIn(`${name}ThrottleRate`).sort()).toEqual(['Invocations', 'Throttles']);
      expect(alarm(`${name}ErrorRate`)).toMatchObject({
        Threshold: 5,
        DatapointsToAlarm: 3,
        EvaluationPeriods: 5,
      });
    }
    // Raw error counts are alarmed only for the scheduled JWKS refresh, which has no traffic to divide by.
    expect(alarms.filter(([, a]) => a.Properties.MetricName === 'Errors').map(([id]) => id)).toEqual([
      expect.stringMatching(/^ObservabilityJwksRefreshFailures/),
    ]);
    const singleDatapoint = alarms.filter(([, a]) => a.Properties.EvaluationPeriods === 1).map(([id]) => id);
    expect(singleDatapoint).toEqual([expect.stringMatching(/^ObservabilityDlqNotEmpty/)]);
  });

  it('replace whole-answer duration p99 > 3 s with turns nearing the function timeout', () => {
    expect(alarm('TurnDurationNearTimeout')).toMatchObject({
      MetricName: STREAM_METRICS.turnDuration,
      ExtendedStatistic: 'p99',
      Threshold: 0.8 * 120 * 1000,
    });
  });

  it('are each explained in the alarm table (README or a docs/ page)', () => {
    const root = join(import.meta.dirname, '../..');
    const docs = existsSync(join(root, 'docs'))
      ? readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'))
      : [];
    const readme = ['README.md', ...docs.map((f) => join('docs', f))]
      .map((f) => readFileSync(join(root, f), 'utf8'))
      .join('\n');
    for (const [, { Properties }] of alarms) {
      const name = String(Properties.AlarmName).replace(/^StreamingChat-/, '');
      expect(readme, name).toContain(`| \`${name}\` |`);
    }
  });
});

describe('dashboard', () => {
  it('graphs only metric names the handlers publish', () => {
    const [[, dashboard]] = resourcesOf(withEmail.template, 'AWS::CloudWatch::Dashboard') as [
      [string, Resource],
    ];
    const parts = (dashboard.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const body = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('')) as {
      widgets: Array<{ properties: { metrics?: unknown[][] } }>;
    };
    const ours = body.widgets
      .flatMap((w) => w.properties.metrics ?? [])
      .filter((m) => m[0] === METRICS_NAMESPACE)
      .map((m) => ({ name: String(m[1]), service: String(m[m.indexOf('service') + 1]) }));
    expect(ours.length).toBeGreaterThan(15);
    for (const { name, service } of ours) expect(EMITTED[service], `${service} ${name}`).toContain(name);
    expect(new Set(ours.map((m) => m.name))).toEqual(
      new Set([...(EMITTED[SERVICE_NAMES.stream] ?? []), ...(EMITTED[SERVICE_NAMES.persist] ?? [])]),
    );
  });
});

describe('a second stage (chat:stage=dev) in the same account and Region', () => {
  it('has its own stack name, alarm names and metrics namespace, and its functions publish there', () => {
    const dev = synth({ stage: 'dev', alarmEmail: 'oncall@example.com' });
    expect(dev.stack.stackName).toBe('StreamingChat-dev');
    const devAlarms = resourcesOf(dev.template, 'AWS::CloudWatch::Alarm');
    expect(devAlarms.length).toBe(alarms.length);
    for (const [id, { Properties }] of devAlarms)
      expect(String(Properties.AlarmName), id).toMatch(/^StreamingChat-dev-/);
    const functions = resourcesOf(dev.template, 'AWS::Lambda::Function').filter(
      ([, f]) =>
        (f.Properties.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables
          ?.POWERTOOLS_METRICS_NAMESPACE,
    );
    expect(functions.length).toBeGreaterThanOrEqual(2);
    for (const [id, f] of functions)
      expect(
        (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables
          .POWERTOOLS_METRICS_NAMESPACE,
        id,
      ).toBe(`${METRICS_NAMESPACE}/dev`);
    // Every mention of the product's name in the template (namespaces in alarms and in the dashboard's
    // body, alarm names, the topic's source condition, logical ids CDK derives from the stack's name)
    // carries the stage: nothing reads or names the default stage.
    const text = JSON.stringify(dev.template.toJSON());
    expect(text.match(/StreamingChat\/dev/g)?.length).toBeGreaterThan(15);
    expect(text.match(/StreamingChat(?![-/]?dev)/g) ?? []).toEqual([]);
  }, 60_000);
});
