import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { FunctionUrlAuthType, HttpMethod, InvokeMode } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { Auth } from './auth.ts';
import { Cache } from './cache.ts';
import type { ChatStackConfig } from './config.ts';
import { Data } from './data.ts';
import { ChatFunction } from './functions.ts';
import { Network } from './network.ts';
import { METRICS_NAMESPACE, Observability } from './observability.ts';
import { MessageQueue } from './queue.ts';
import { QUEUE_SETTINGS } from '../functions/contracts/queue.ts';

export interface ChatStackProps extends StackProps {
  config: ChatStackConfig;
}

const INFERENCE_PROFILE_PREFIX = /^(us|eu|apac|us-gov|global)\./;

/** What a model id or cross-region inference profile needs to be invoked. */
export function modelResources(stack: Stack, modelId: string): string[] {
  const match = INFERENCE_PROFILE_PREFIX.exec(modelId);
  if (!match) return [`arn:${stack.partition}:bedrock:${stack.region}::foundation-model/${modelId}`];
  // A cross-region profile routes to the same foundation model in several regions of its geography.
  return [
    `arn:${stack.partition}:bedrock:${stack.region}:${stack.account}:inference-profile/${modelId}`,
    `arn:${stack.partition}:bedrock:*::foundation-model/${modelId.slice(match[0].length)}`,
  ];
}

export class ChatStack extends Stack {
  readonly streamFunction: ChatFunction;
  readonly persistFunction: ChatFunction;

  constructor(scope: Construct, id: string, props: ChatStackProps) {
    super(scope, id, props);
    const { config } = props;
    const logRetention = config.logRetentionDays as RetentionDays;
    const removalPolicy = config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    const network = new Network(this, 'Network', { natGateway: config.natGateway, logRetention });
    const data = new Data(this, 'Data', { deletionProtection: config.deletionProtection, removalPolicy });
    const queue = new MessageQueue(this, 'Messages');
    const auth = new Auth(this, 'Auth', { removalPolicy, logRetention });
    const cache = new Cache(this, 'Cache', {
      vpc: network.vpc,
      subnetIds: network.vpc.selectSubnets(network.functionSubnets).subnetIds,
      clients: [network.functionSecurityGroup],
    });

    const shared = {
      TABLE_NAME: data.table.tableName,
      MESSAGE_TTL_DAYS: String(config.messageTtlDays),
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    };
    this.streamFunction = new ChatFunction(this, 'ChatStream', {
      entry: 'functions/chat-stream/handler.ts',
      description: 'Streams chat answers over SSE (Function URL, RESPONSE_STREAM)',
      memorySize: config.streamMemoryMb,
      timeout: Duration.seconds(config.streamTimeoutSeconds),
      logRetention,
      vpc: {
        vpc: network.vpc,
        subnets: network.functionSubnets,
        securityGroup: network.functionSecurityGroup,
      },
      environment: {
        ...shared,
        POWERTOOLS_SERVICE_NAME: 'chat-stream',
        QUEUE_URL: queue.queue.queueUrl,
        REDIS_URL: cache.url,
        REDIS_CLUSTER: 'true',
        MODEL_ID: config.modelId,
        ...(config.knowledgeBaseId ? { KNOWLEDGE_BASE_ID: config.knowledgeBaseId } : {}),
        AUTH_ISSUER: auth.issuer,
        AUTH_AUDIENCE: auth.client.userPoolClientId,
        AUTH_JWKS: auth.jwks,
        FLUSH_PADDING_BYTES: String(config.flushPaddingBytes),
        MODEL_TIMEOUT_MS: String(Math.max(1000, (config.streamTimeoutSeconds - 5) * 1000)),
      },
    });
    this.persistFunction = new ChatFunction(this, 'Persist', {
      entry: 'functions/persist/handler.ts',
      description: 'Persists chat messages from SQS FIFO to DynamoDB',
      memorySize: 512,
      timeout: Duration.seconds(QUEUE_SETTINGS.consumerTimeoutSeconds),
      logRetention,
      environment: { ...shared, POWERTOOLS_SERVICE_NAME: 'persist' },
    });
    const stream = this.streamFunction.fn;
    const persist = this.persistFunction.fn;

    data.table.grantReadData(stream);
    // The stream function writes directly only when SQS is unreachable; the consumer writes always.
    for (const fn of [stream, persist]) {
      fn.addToRolePolicy(
        new PolicyStatement({
          actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
          resources: [data.table.tableArn],
        }),
      );
    }
    stream.addToRolePolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queue.queueArn] }),
    );
    const models = modelResources(this, config.modelId);
    stream.addToRolePolicy(
      new PolicyStatement({ actions: ['bedrock:InvokeModelWithResponseStream'], resources: models }),
    );
    for (const arn of models.filter((a) => a.includes(':bedrock:*:'))) {
      Validations.of(stream.role?.node.tryFindChild('DefaultPolicy') ?? stream).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${arn.replace(this.partition, '<AWS::Partition>')}]`,
        reason:
          'A cross-region inference profile routes each request to this one foundation model in any region of its geography.',
      });
    }
    if (config.knowledgeBaseId) {
      stream.addToRolePolicy(
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ['bedrock:Retrieve'],
          resources: [
            `arn:${this.partition}:bedrock:${this.region}:${this.account}:knowledge-base/${config.knowledgeBaseId}`,
          ],
        }),
      );
    }
    persist.addEventSource(
      new SqsEventSource(queue.queue, { batchSize: QUEUE_SETTINGS.batchSize, reportBatchItemFailures: true }),
    );

    const url = stream.addFunctionUrl({
      authType: FunctionUrlAuthType.NONE,
      invokeMode: InvokeMode.RESPONSE_STREAM,
      ...(config.allowedOrigins.length > 0
        ? {
            cors: {
              allowedOrigins: config.allowedOrigins,
              allowedMethods: [HttpMethod.POST],
              allowedHeaders: ['authorization', 'content-type'],
              maxAge: Duration.hours(1),
            },
          }
        : {}),
    });

    new Observability(this, 'Observability', {
      streamFunction: stream,
      persistFunction: persist,
      queue: queue.queue,
      deadLetterQueue: queue.deadLetterQueue,
      alarmEmail: config.alarmEmail,
    });

    new CfnOutput(this, 'FunctionUrl', { value: url.url });
    new CfnOutput(this, 'UserPoolId', { value: auth.userPool.userPoolId });
    new CfnOutput(this, 'UserPoolClientId', { value: auth.client.userPoolClientId });
    new CfnOutput(this, 'TableName', { value: data.table.tableName });
    new CfnOutput(this, 'QueueUrl', { value: queue.queue.queueUrl });
  }
}
