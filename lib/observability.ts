import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  MathExpression,
  Metric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { PERSIST_METRICS, SERVICE_NAMES, STREAM_METRICS } from '../functions/contracts/observability.ts';

export interface ObservabilityProps {
  streamFunction: IFunction;
  persistFunction: IFunction;
  queue: IQueue;
  deadLetterQueue: IQueue;
  /** ElastiCache's count of throttled commands for the cache; undefined without a cache (chat:cache=off). */
  cacheThrottledCommands: Metric | undefined;
  /** The scheduled JWKS refresh: when it fails, a key rotation turns into 401s for everyone. */
  jwksRefreshFunction?: IFunction;
  streamTimeoutSeconds: number;
  alarmEmail: string | undefined;
  /** Without an alarm e-mail, production fails the synth; other stages get a warning. */
  production: boolean;
  /** Where the functions publish (the stage's own namespace, see `stageNames`). */
  metricsNamespace: string;
}

/** A TTFT far above any real one, standing in for "turns happened but no first token was measured". */
export const NO_FIRST_TOKEN_MS = 100_000;

/**
 * The fewest events a minute before a rate alarm counts the minute: below it one user (a script retrying
 * against a limit, a conversation that overflows the context window every turn) cannot page anyone.
 */
export const RATE_ALARM_FLOORS = {
  /** Failing turns, failed retrievals, failed saves, function errors and throttles in a minute. */
  events: 5,
  /** Requests refused by a per-user limit in a minute: at 10 turns a minute, two users hammering at once. */
  limitRejections: 20,
} as const;

const minutes = Duration.minutes;
const hours = Duration.hours;

/**
 * Dashboard and alarms over the metrics the functions publish (names from functions/contracts), all
 * notifying one SNS topic CloudWatch can publish to. Error alarms are on rates over several
 * datapoints, so one timeout never pages; each alarm's description says why its threshold and period.
 */
export class Observability extends Construct {
  readonly topic: Topic;
  readonly dashboard: Dashboard;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.topic = this.alarmTopic(props);

    const stream = (metricName: string, statistic: string, period = minutes(1)) =>
      new Metric({
        namespace: props.metricsNamespace,
        metricName,
        dimensionsMap: { service: SERVICE_NAMES.stream },
        statistic,
        period,
      });
    const persist = (metricName: string, statistic: string) =>
      new Metric({
        namespace: props.metricsNamespace,
        metricName,
        dimensionsMap: { service: SERVICE_NAMES.persist },
        statistic,
        period: minutes(1),
      });
    // `part` as a percentage of `total`, 0 when nothing happened (so no traffic is never an alarm) and
    // 0 below `floor` events (so one user never pages). `key` names the expression's metrics: ids must
    // be unique within a graph.
    const rate = (
      key: string,
      label: string,
      part: IMetric,
      total: IMetric,
      floor: number = RATE_ALARM_FLOORS.events,
    ) =>
      new MathExpression({
        expression: `IF(FILL(${key}_part, 0) >= ${floor}, IF(${key}_total > 0, 100 * FILL(${key}_part, 0) / ${key}_total, 0), 0)`,
        usingMetrics: { [`${key}_part`]: part, [`${key}_total`]: total },
        label,
        period: minutes(1),
      });

    const turns = stream(STREAM_METRICS.turns, 'Sum');
    const turnErrorRate = rate(
      'errors',
      'Turns that ended in an error (%)',
      stream(STREAM_METRICS.turnErrors, 'Sum'),
      turns,
    );
    const retrievalFailureRate = rate(
      'retrieval',
      'Turns whose retrieval failed (%)',
      stream(STREAM_METRICS.retrievalFailures, 'Sum'),
      turns,
    );
    const failedSaveRate = rate(
      'saves',
      'Failed background saves (%)',
      stream(STREAM_METRICS.failedBackgroundSaves, 'Sum'),
      stream(STREAM_METRICS.backgroundSaves, 'Sum'),
    );
    const modelTtftP99 = stream(STREAM_METRICS.modelTimeToFirstToken, 'p99', minutes(5));
    // Turns without any first token (every model call failing) must not read as "no data, all fine".
    const modelTtftDuringTraffic = new MathExpression({
      expression: `IF(FILL(turns, 0) > 0, FILL(ttft, ${NO_FIRST_TOKEN_MS}), 0)`,
      usingMetrics: { turns: stream(STREAM_METRICS.turns, 'Sum', minutes(5)), ttft: modelTtftP99 },
      label: `Model time to first token p99 (ms; ${NO_FIRST_TOKEN_MS} = turns without a first token)`,
      period: minutes(5),
    });
    const turnDurationP99 = stream(STREAM_METRICS.turnDuration, 'p99', minutes(5));
    // Refused requests never become turns: the share refused is rejections / (turns + rejections).
    const limitRejections = stream(STREAM_METRICS.limitRejections, 'Sum');
    const limitRejectionRate = new MathExpression({
      expression: `IF(FILL(refused, 0) >= ${RATE_ALARM_FLOORS.limitRejections}, 100 * FILL(refused, 0) / (FILL(accepted, 0) + FILL(refused, 0)), 0)`,
      usingMetrics: { accepted: turns, refused: limitRejections },
      label: 'Chat requests refused by a per-user limit (%)',
      period: minutes(1),
    });
    const limiterFallbacks = stream(STREAM_METRICS.limiterFallbacks, 'Sum');
    const nearTimeoutMs = Math.round(props.streamTimeoutSeconds * 1000 * 0.8);
    const fnErrorRate = (fn: IFunction) =>
      rate(
        'failed',
        'Invocations that failed (%)',
        fn.metricErrors({ statistic: 'Sum', period: minutes(1) }),
        fn.metricInvocations({ statistic: 'Sum', period: minutes(1) }),
      );
    const fnThrottleRate = (fn: IFunction) =>
      new MathExpression({
        expression: `IF(FILL(throttles, 0) >= ${RATE_ALARM_FLOORS.events}, 100 * FILL(throttles, 0) / (FILL(invocations, 0) + FILL(throttles, 0)), 0)`,
        usingMetrics: {
          throttles: fn.metricThrottles({ statistic: 'Sum', period: minutes(1) }),
          invocations: fn.metricInvocations({ statistic: 'Sum', period: minutes(1) }),
        },
        label: 'Invocations throttled (%)',
        period: minutes(1),
      });

    const alarm = (
      name: string,
      metric: IMetric,
      threshold: number,
      datapoints: [number, number],
      description: string,
    ) => {
      const created = new Alarm(this, name, {
        alarmName: `${stack.stackName}-${name}`,
        metric,
        threshold,
        datapointsToAlarm: datapoints[0],
        evaluationPeriods: datapoints[1],
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      // OK too: on-call learns that an incident resolved itself without opening the console.
      created.addAlarmAction(new SnsAction(this.topic));
      created.addOkAction(new SnsAction(this.topic));
      this.alarms.push(created);
      return created;
    };

    alarm(
      'TurnErrorRate',
      turnErrorRate,
      10,
      [3, 5],
      `More than 10 % of turns, and at least ${RATE_ALARM_FLOORS.events} a minute, ended in an error event in 3 of 5 minutes: the model or a dependency is failing for many users (a model outage never shows in Lambda Errors, it comes after the 200).`,
    );
    alarm(
      'RetrievalFailureRate',
      retrievalFailureRate,
      10,
      [3, 5],
      'More than 10 % of turns could not retrieve from the knowledge base in 3 of 5 minutes: answers go out without sources.',
    );
    alarm(
      'ModelTtftP99',
      modelTtftDuringTraffic,
      1500,
      [3, 3],
      `Model time to first token p99 above 1.5 s for 15 minutes (measured from the model call, retrieval excluded), or turns with no first token at all (${NO_FIRST_TOKEN_MS} ms stands in for missing data during traffic).`,
    );
    alarm(
      'TurnDurationNearTimeout',
      turnDurationP99,
      nearTimeoutMs,
      [2, 3],
      `Turn duration p99 above 80 % of the ${props.streamTimeoutSeconds} s function timeout in 2 of 3 five-minute periods: answers are about to be cut off (whole answers legitimately take seconds, so this is not a latency alarm).`,
    );
    alarm(
      'FailedSaveRate',
      failedSaveRate,
      5,
      [3, 5],
      'More than 5 % of background saves failed on both the queue and the direct write in 3 of 5 minutes: messages are being lost.',
    );
    alarm(
      'DlqNotEmpty',
      props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: minutes(1),
        statistic: 'Maximum',
      }),
      0,
      [1, 1],
      'A message reached the dead-letter queue after 5 receives: it was never persisted; a state, not a rate, so one datapoint.',
    );
    alarm(
      'QueueAge',
      props.queue.metricApproximateAgeOfOldestMessage({ period: minutes(1), statistic: 'Maximum' }),
      300,
      [3, 3],
      'The oldest unpersisted message is older than 5 minutes for 3 minutes: the consumer is down or far behind.',
    );
    alarm(
      'UnknownKeyRejections',
      stream(STREAM_METRICS.unknownKeyRejections, 'Sum', minutes(5)),
      20,
      [2, 2],
      'More than 20 tokens per 5 minutes, for 10 minutes, were signed by a key the function does not know: Cognito rotated its keys (run the JWKS refresh, README "Key rotation") or someone is sending forged tokens.',
    );
    alarm(
      'LimitRejectionRate',
      limitRejectionRate,
      20,
      [3, 5],
      `More than 20 % of chat requests, and at least ${RATE_ALARM_FLOORS.limitRejections} a minute, were refused with 429 by a per-user limit in 3 of 5 minutes: the limits are too low for real use, or clients keep retrying; one user at a limit never pages.`,
    );
    if (props.cacheThrottledCommands) {
      alarm(
        'ValkeyThrottled',
        props.cacheThrottledCommands,
        0,
        [3, 5],
        'Valkey refused commands in 3 of 5 minutes: the ECPU limit (chat:cacheEcpuPerSecond) is too low for the load, turns fall back to DynamoDB.',
      );
      // Without a cache the limits are per environment by design: there is nothing to fall back from.
      alarm(
        'LimiterFallbacks',
        limiterFallbacks,
        0,
        [3, 5],
        'Per-user limits were checked in memory because Valkey did not answer, in 3 of 5 minutes: each execution environment enforces them alone, so a user spread over N environments gets up to N times a limit.',
      );
    }
    // Cache sign-in and reachability (functions/adapters/redis-connection.ts): the runtime logs the cause
    // once per environment and counts; ElastiCache counts refused and throttled IAM sign-ins on its side
    // (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/serverless-metrics-events-redis.html).
    const throttledCommands = props.cacheThrottledCommands;
    if (throttledCommands) {
      // The same cache (dimension clusterId) as the throttling alarm.
      const cacheMetric = (metricName: string) =>
        new Metric({
          namespace: throttledCommands.namespace,
          metricName,
          dimensionsMap: throttledCommands.dimensions as Record<string, string>,
          statistic: 'Sum',
          period: minutes(1),
        });
      alarm(
        'CacheAuthFailures',
        new MathExpression({
          expression: 'FILL(runtime, 0) + FILL(service, 0) + FILL(throttled, 0)',
          usingMetrics: {
            runtime: stream(STREAM_METRICS.cacheAuthFailures, 'Sum'),
            service: cacheMetric('AuthenticationFailures'),
            throttled: cacheMetric('IamAuthenticationThrottling'),
          },
          label:
            'Cache sign-ins refused (function, ElastiCache AuthenticationFailures and IamAuthenticationThrottling)',
          period: minutes(1),
        }),
        0,
        [2, 3],
        'The cache refused or throttled the function\'s IAM sign-ins in 2 of 3 minutes (function CacheAuthFailures, ElastiCache AuthenticationFailures or IamAuthenticationThrottling): the cache is unused, so turn control is off and per-user limits hold per environment only. Check the user group, elasticache:Connect, a storm of new connections, and the function log line "cache unavailable".',
      );
      alarm(
        'CacheUnavailable',
        stream(STREAM_METRICS.cacheUnavailable, 'Sum'),
        0,
        [3, 5],
        'Cache calls gave up because the cache was down (refused sign-in or no answer) in 3 of 5 minutes: turns answer from DynamoDB without turn control; the function log says why once per environment.',
      );
    }
    for (const [name, fn] of [
      ['Stream', props.streamFunction],
      ['Persist', props.persistFunction],
    ] as const) {
      alarm(
        `${name}ErrorRate`,
        fnErrorRate(fn),
        5,
        [3, 5],
        `More than 5 % of ${name.toLowerCase()} function invocations, and at least ${RATE_ALARM_FLOORS.events} a minute, failed in 3 of 5 minutes (crashes, timeouts; one failure never pages).`,
      );
      alarm(
        `${name}ThrottleRate`,
        fnThrottleRate(fn),
        1,
        [3, 5],
        `More than 1 % of ${name.toLowerCase()} function invocations, and at least ${RATE_ALARM_FLOORS.events} a minute, were throttled in 3 of 5 minutes: reserved or account concurrency is exhausted.`,
      );
    }
    if (props.jwksRefreshFunction)
      alarm(
        'JwksRefreshFailures',
        props.jwksRefreshFunction.metricErrors({ statistic: 'Sum', period: minutes(15) }),
        0,
        [2, 2],
        'The scheduled JWKS refresh failed twice in a row (after its retries): a Cognito key rotation now would reject every user with 401 until it works again (README "Key rotation").',
      );

    // Ratings are few and slow: counted by the hour, the share rated down is a quality signal to chart.
    const feedbackUp = stream(STREAM_METRICS.feedbackPositive, 'Sum', hours(1));
    const feedbackDown = stream(STREAM_METRICS.feedbackNegative, 'Sum', hours(1));
    const feedbackDownRate = new MathExpression({
      expression:
        'IF(FILL(up, 0) + FILL(down, 0) > 0, 100 * FILL(down, 0) / (FILL(up, 0) + FILL(down, 0)), 0)',
      usingMetrics: { up: feedbackUp, down: feedbackDown },
      label: 'Answers rated down (% of ratings)',
      period: hours(1),
    });
    const cacheWidgets = (['profile', 'history', 'rag'] as const).flatMap((kind) => [
      stream(STREAM_METRICS.cacheHit(kind), 'Sum', minutes(5)),
      stream(STREAM_METRICS.cacheMiss(kind), 'Sum', minutes(5)),
    ]);
    this.dashboard = new Dashboard(this, 'Dashboard', {
      widgets: [
        [
          new GraphWidget({
            title: 'Time to first token (ms)',
            left: [
              stream(STREAM_METRICS.modelTimeToFirstToken, 'p50', minutes(5)),
              modelTtftP99,
              stream(STREAM_METRICS.timeToFirstToken, 'p50', minutes(5)),
              stream(STREAM_METRICS.timeToFirstToken, 'p99', minutes(5)),
            ],
            // Prompt caching is what cuts the model's time to first token on long conversations.
            right: [
              stream(STREAM_METRICS.modelCacheReadTokens, 'Sum', minutes(5)),
              stream(STREAM_METRICS.modelCacheWriteTokens, 'Sum', minutes(5)),
            ],
            width: 12,
          }),
          new GraphWidget({
            title: 'First byte and turn duration (ms)',
            left: [
              stream(STREAM_METRICS.firstByte, 'p99', minutes(5)),
              stream(STREAM_METRICS.turnDuration, 'p50', minutes(5)),
              turnDurationP99,
            ],
            width: 12,
          }),
        ],
        [
          new GraphWidget({
            title: 'Turns and errors',
            left: [
              turns,
              stream(STREAM_METRICS.turnErrors, 'Sum'),
              stream(STREAM_METRICS.retrievalFailures, 'Sum'),
            ],
            right: [turnErrorRate, retrievalFailureRate],
            width: 8,
          }),
          new GraphWidget({
            title: 'Auth: tokens signed by an unknown key',
            left: [stream(STREAM_METRICS.unknownKeyRejections, 'Sum')],
            width: 8,
          }),
          new GraphWidget({
            title: 'Per-user limits: refusals (429) and in-memory fallbacks',
            left: [limitRejections, limiterFallbacks],
            right: [limitRejectionRate],
            width: 8,
          }),
        ],
        [
          new GraphWidget({
            title: 'Context and RAG (ms, p99)',
            left: [
              stream(STREAM_METRICS.contextLoad, 'p99', minutes(5)),
              stream(STREAM_METRICS.ragRetrieval, 'p99', minutes(5)),
            ],
            width: 8,
          }),
          new GraphWidget({ title: 'Cache hits and misses', left: cacheWidgets, width: 8 }),
          new GraphWidget({
            title: 'Background saves',
            left: [
              stream(STREAM_METRICS.backgroundSaves, 'Sum'),
              stream(STREAM_METRICS.failedBackgroundSaves, 'Sum'),
            ],
            right: [failedSaveRate],
            width: 8,
          }),
        ],
        [
          new GraphWidget({
            title: 'Answer ratings (thumbs up and down) and the share rated down',
            left: [feedbackUp, feedbackDown],
            right: [feedbackDownRate],
            width: 12,
          }),
        ],
        [
          new GraphWidget({
            title: 'Queue and consumer',
            left: [
              props.queue.metricApproximateNumberOfMessagesVisible(),
              props.deadLetterQueue.metricApproximateNumberOfMessagesVisible(),
              persist(PERSIST_METRICS.messagesPersisted, 'Sum'),
              persist(PERSIST_METRICS.duplicatesSkipped, 'Sum'),
              persist(PERSIST_METRICS.persistFailures, 'Sum'),
              persist(PERSIST_METRICS.messagesDiscarded, 'Sum'),
            ],
            right: [props.queue.metricApproximateAgeOfOldestMessage()],
            width: 8,
          }),
          new GraphWidget({
            title: 'Functions',
            left: [
              props.streamFunction.metricErrors(),
              props.persistFunction.metricErrors(),
              props.streamFunction.metricThrottles(),
              props.persistFunction.metricThrottles(),
            ],
            right: [props.streamFunction.metric('ConcurrentExecutions', { statistic: 'Maximum' })],
            width: 8,
          }),
          ...(props.cacheThrottledCommands
            ? [
                new GraphWidget({
                  title: 'Valkey: throttled commands, calls given up, sign-ins refused',
                  left: [
                    props.cacheThrottledCommands,
                    stream(STREAM_METRICS.cacheUnavailable, 'Sum'),
                    stream(STREAM_METRICS.cacheAuthFailures, 'Sum'),
                  ],
                  width: 8,
                }),
              ]
            : []),
        ],
      ],
    });
    const region = stack.region;
    new CfnOutput(stack, 'DashboardUrl', {
      value: `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`,
    });
  }

  /**
   * CloudWatch cannot use the AWS managed `alias/aws/sns` key, so the topic has a key of its own whose
   * policy lets CloudWatch encrypt; `enforceSSL` writes a topic policy that replaces the default one,
   * so CloudWatch's right to publish is stated explicitly, limited to this stack's alarms.
   */
  private alarmTopic(props: ObservabilityProps): Topic {
    const stack = Stack.of(this);
    const cloudwatch = new ServicePrincipal('cloudwatch.amazonaws.com');
    const key = new Key(this, 'AlarmTopicKey', {
      description: 'Encrypts the alarm topic; CloudWatch may use it to publish alarms',
      enableKeyRotation: true,
      pendingWindow: Duration.days(7),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // The same confused-deputy conditions as the topic policy: only this stack's alarms, in this account.
    const fromOurAlarms = {
      StringEquals: { 'aws:SourceAccount': stack.account },
      ArnLike: {
        'aws:SourceArn': `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:${stack.stackName}-*`,
      },
    };
    key.addToResourcePolicy(
      new PolicyStatement({
        sid: 'CloudWatchAlarmsEncrypt',
        principals: [cloudwatch],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: fromOurAlarms,
      }),
    );
    const topic = new Topic(this, 'Alarms', {
      displayName: 'Streaming chat alarms',
      enforceSSL: true,
      masterKey: key,
    });
    topic.addToResourcePolicy(
      new PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [cloudwatch],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        conditions: fromOurAlarms,
      }),
    );
    if (props.alarmEmail) topic.addSubscription(new EmailSubscription(props.alarmEmail));
    else if (props.production)
      Annotations.of(this).addError(
        'chat:production=true needs chat:alarmEmail: without a subscriber no alarm reaches anyone.',
      );
    else
      Annotations.of(this).addWarningV2(
        'chat:noAlarmEmail',
        'NO ONE WILL BE PAGED: chat:alarmEmail is not set, so the alarm topic has no subscriber. Deploy with -c chat:alarmEmail=oncall@example.com (or subscribe to the AlarmTopicArn output yourself).',
      );
    new CfnOutput(stack, 'AlarmTopicArn', { value: topic.topicArn });
    return topic;
  }
}
