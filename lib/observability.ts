import { CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Alias } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The namespace and names the stream function publishes (EMF, Powertools Metrics). */
export const METRICS_NAMESPACE = 'StreamingChat';

export interface ObservabilityProps {
  streamFunction: IFunction;
  persistFunction: IFunction;
  queue: IQueue;
  deadLetterQueue: IQueue;
  alarmEmail: string | undefined;
}

/** Dashboard and alarms for the seed's thresholds and the pipeline's health, all notifying one SNS topic. */
export class Observability extends Construct {
  readonly topic: Topic;
  readonly dashboard: Dashboard;
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    this.topic = new Topic(this, 'Alarms', {
      displayName: 'Streaming chat alarms',
      enforceSSL: true,
      masterKey: Alias.fromAliasName(this, 'SnsKey', 'alias/aws/sns'),
    });
    if (props.alarmEmail) this.topic.addSubscription(new EmailSubscription(props.alarmEmail));
    const chatMetric = (metricName: string, statistic: string) =>
      new Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { service: 'chat-stream' },
        statistic,
        period: Duration.minutes(5),
      });
    const ttftP99 = chatMetric('TimeToFirstToken', 'p99');
    const durationP99 = chatMetric('TurnDuration', 'p99');
    const failedSaveRate = new MathExpression({
      expression: 'IF(saves > 0, 100 * failed / saves, 0)',
      usingMetrics: {
        failed: chatMetric('FailedBackgroundSaves', 'Sum'),
        saves: chatMetric('BackgroundSaves', 'Sum'),
      },
      label: 'Failed background saves (%)',
      period: Duration.minutes(5),
    });
    const add = (
      name: string,
      metric: Metric | MathExpression,
      threshold: number,
      description: string,
      periods = 1,
    ) => {
      const alarm = new Alarm(this, name, {
        metric,
        threshold,
        evaluationPeriods: periods,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      alarm.addAlarmAction(new SnsAction(this.topic));
      this.alarms.push(alarm);
      return alarm;
    };
    add('TtftP99', ttftP99, 1000, 'Time to first token p99 above 1 s');
    add('DurationP99', durationP99, 3000, 'Turn duration p99 above 3 s');
    add(
      'FailedSaves',
      failedSaveRate,
      5,
      'More than 5 % of background saves failed (queue and direct write)',
    );
    add(
      'DlqNotEmpty',
      props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      0,
      'Messages in the dead-letter queue',
    );
    add(
      'QueueAge',
      props.queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
      300,
      'Oldest unpersisted message older than 5 minutes',
      3,
    );
    for (const [name, fn] of [
      ['Stream', props.streamFunction],
      ['Persist', props.persistFunction],
    ] as const) {
      add(
        `${name}Errors`,
        fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        0,
        `${name} function errors`,
      );
      add(
        `${name}Throttles`,
        fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
        0,
        `${name} function throttles`,
      );
    }
    this.dashboard = new Dashboard(this, 'Dashboard', {
      widgets: [
        [
          new GraphWidget({
            title: 'Time to first token (ms)',
            left: [chatMetric('TimeToFirstToken', 'p50'), ttftP99],
            width: 12,
          }),
          new GraphWidget({
            title: 'First byte and turn duration (ms)',
            left: [chatMetric('FirstByte', 'p99'), chatMetric('TurnDuration', 'p50'), durationP99],
            width: 12,
          }),
        ],
        [
          new GraphWidget({
            title: 'Context and RAG (ms, p99)',
            left: [chatMetric('ContextLoad', 'p99'), chatMetric('RagRetrieval', 'p99')],
            width: 8,
          }),
          new GraphWidget({
            title: 'Cache hits and misses',
            left: ['profile', 'history', 'rag'].flatMap((kind) => [
              chatMetric(`${kind}CacheHit`, 'Sum'),
              chatMetric(`${kind}CacheMiss`, 'Sum'),
            ]),
            width: 8,
          }),
          new GraphWidget({
            title: 'Background saves',
            left: [chatMetric('BackgroundSaves', 'Sum'), chatMetric('FailedBackgroundSaves', 'Sum')],
            right: [failedSaveRate],
            width: 8,
          }),
        ],
        [
          new GraphWidget({
            title: 'Queue',
            left: [
              props.queue.metricApproximateNumberOfMessagesVisible(),
              props.deadLetterQueue.metricApproximateNumberOfMessagesVisible(),
            ],
            right: [props.queue.metricApproximateAgeOfOldestMessage()],
            width: 12,
          }),
          new GraphWidget({
            title: 'Functions',
            left: [
              props.streamFunction.metricErrors(),
              props.persistFunction.metricErrors(),
              props.streamFunction.metricThrottles(),
              props.persistFunction.metricThrottles(),
            ],
            width: 12,
          }),
        ],
      ],
    });
    const region = Stack.of(this).region;
    new CfnOutput(Stack.of(this), 'DashboardUrl', {
      value: `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${this.dashboard.dashboardName}`,
    });
  }
}
