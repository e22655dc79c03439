import {
  Annotations,
  CfnOutput,
  CustomResource,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  type StackProps,
} from 'aws-cdk-lib';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import {
  type FunctionUrl,
  FunctionUrlAuthType,
  type FunctionUrlCorsOptions,
  HttpMethod,
  InvokeMode,
} from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { CORS_SETTINGS } from '../functions/contracts/cors.ts';
import { DEFAULTS, modelTimeoutMs } from '../functions/contracts/defaults.ts';
import { allowedModels } from '../functions/contracts/models.ts';
import { SERVICE_NAMES } from '../functions/contracts/observability.ts';
import { QUEUE_SETTINGS } from '../functions/contracts/queue.ts';
import { Attachments } from './attachments.ts';
import { Auth } from './auth.ts';
import { Cache } from './cache.ts';
import { type ChatStackConfig, stageNames } from './config.ts';
import { Data } from './data.ts';
import { deployTimeProvider } from './deploy-time.ts';
import { ApiFrontDoor } from './front-door.ts';
import { ChatFunction, giveCdkHandlersLogGroups } from './functions.ts';
import { ManagedInstances } from './managed-instances.ts';
import { ModelAccess } from './model-access.ts';
import { checkModelRegion, type ModelRef, parseModelId } from './models.ts';
import { acknowledgeWildcardResource } from './nag.ts';
import { Network } from './network.ts';
import { Observability } from './observability.ts';
import { MessageQueue } from './queue.ts';
import { Web, webAssets } from './web.ts';

export interface ChatStackProps extends StackProps {
  config: ChatStackConfig;
}

/**
 * What each function may do to the table and its sessions-by-activity index. The stream function reads
 * (GetItem, Query with ConsistentRead, BatchGetItem for a search's sessions), writes the direct-write fallback with the consumer's own calls,
 * renames sessions and deletes a session's or a user's items (DELETE /sessions/{id}, DELETE /me); it
 * lists sessions from the index. The consumer writes messages and sessions, reads the session and the
 * erasure marker (GetItem) and the last messages (Query) for a title, and drops a message a tombstone
 * or an erasure outdated (DeleteItem), with its search terms.
 */
const TABLE_ACTIONS = {
  stream: {
    table: [
      'dynamodb:GetItem',
      'dynamodb:BatchGetItem',
      'dynamodb:Query',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:BatchWriteItem',
    ],
    index: ['dynamodb:Query'],
  },
  persist: {
    table: [
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
    ],
  },
};

/** The Function URL's CORS, as functions/contracts/cors.ts says, for the given origins. */
function functionUrlCors(allowedOrigins: string[]): FunctionUrlCorsOptions {
  return {
    allowedOrigins,
    allowedMethods: CORS_SETTINGS.allowMethods.map((method) => HttpMethod[method]),
    allowedHeaders: [...CORS_SETTINGS.allowHeaders],
    exposedHeaders: [...CORS_SETTINGS.exposeHeaders],
    maxAge: Duration.seconds(CORS_SETTINGS.maxAgeSeconds),
  };
}

export class ChatStack extends Stack {
  readonly streamFunction: ChatFunction;
  readonly persistFunction: ChatFunction;

  constructor(scope: Construct, id: string, props: ChatStackProps) {
    super(scope, id, props);
    const { config } = props;
    const { metricsNamespace } = stageNames(config.stage);
    const logRetention = config.logRetentionDays as RetentionDays;
    const removalPolicy = config.removalPolicy === 'destroy' ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;
    // A new value per synth: every deploy probes the model and rewrites the page's CORS again, unless
    // chat:deployNonce pins it (the escape hatch when Bedrock is having a bad day).
    const synthTime = new Date().toISOString();
    const deployNonce = config.deployNonce ?? synthTime;
    const model = this.checkedModel(config.modelId, 'chat:modelId');
    const titleModelId = config.titleModelId ?? config.modelId;
    const titleModel = config.titles
      ? titleModelId === config.modelId
        ? model
        : this.checkedModel(titleModelId, 'chat:titleModelId')
      : undefined;
    // The default model first; each other allowed model is checked, granted and probed as the default is.
    const allowedModelIds = allowedModels(config.modelId, config.allowedModelIds.join(','));
    const otherModels = allowedModelIds
      .filter((allowed) => allowed !== config.modelId)
      .map((allowed) => this.checkedModel(allowed, 'chat:allowedModelIds'));
    const withCache = config.cache === 'valkey';
    const managed = config.compute === 'managed-instances';

    // chat:cache=off: no VPC at all; every function reaches AWS services on their public endpoints.
    const network = withCache
      ? new Network(this, 'Network', {
          natGateway: config.natGateway,
          logRetention,
          availabilityZones: config.availabilityZones,
          logsEndpoint: managed,
        })
      : undefined;
    if (!withCache) this.warnNetworkKeysUnused(config);
    // Review M4: unpinned AZs may lack an endpoint service or ElastiCache Serverless and roll back.
    if (network && config.production && config.availabilityZones.length === 0)
      Annotations.of(network).addError(
        'chat:production=true needs chat:availabilityZones: without it subnets go to the first two AZ names of the Region, which may lack an endpoint service or ElastiCache Serverless; pin AZ ids such as use1-az1,use1-az2 (README "Networking").',
      );
    const data = new Data(this, 'Data', { deletionProtection: config.deletionProtection, removalPolicy });
    const queue = new MessageQueue(this, 'Messages');
    const attachments = new Attachments(this, 'Attachments', {
      messageTtlDays: config.messageTtlDays,
      removalPolicy,
    });
    const assets = config.web ? webAssets(config.webAssetPath) : undefined;
    if (assets && 'error' in assets) Annotations.of(this).addError(assets.error);
    const webDir = assets && 'dir' in assets ? assets.dir : undefined;
    const auth = new Auth(this, 'Auth', {
      removalPolicy,
      deletionProtection: config.deletionProtection,
      logRetention,
      // Never pinned: a deploy that re-sent the template's old AUTH_JWKS would undo the hourly refresh.
      jwksNonce: synthTime,
    });
    const cache = network
      ? new Cache(this, 'Cache', {
          vpc: network.vpc,
          subnetIds: network.vpc.selectSubnets(network.functionSubnets).subnetIds,
          clients: [network.functionSecurityGroup],
          dataStorageGb: config.cacheDataStorageGb,
          ecpuPerSecond: config.cacheEcpuPerSecond,
        })
      : undefined;
    const guardrail = config.guardrailId ? this.guardrail(config) : undefined;
    const modelAccess = new ModelAccess(this, 'Model', {
      model,
      otherModels,
      ...(titleModel && titleModel !== model ? { titleModel } : {}),
      ...(guardrail ? { guardrail } : {}),
      productIds: config.modelProductIds,
      logRetention,
      deployNonce,
    });

    const shared = {
      TABLE_NAME: data.table.tableName,
      MESSAGE_TTL_DAYS: String(config.messageTtlDays),
      POWERTOOLS_METRICS_NAMESPACE: metricsNamespace,
    };
    this.streamFunction = new ChatFunction(this, 'ChatStream', {
      entry: 'functions/chat-stream/handler.ts',
      description: 'Streams chat answers over SSE (Function URL, RESPONSE_STREAM)',
      memorySize: config.streamMemoryMb,
      timeout: Duration.seconds(config.streamTimeoutSeconds),
      logRetention,
      // Managed Instances take no reserved concurrency: the capacity provider's vCPU ceiling caps them.
      reservedConcurrency: managed ? undefined : config.streamReservedConcurrency,
      credentials: managed ? 'chain' : 'environment',
      // On Managed Instances the network is the capacity provider's, never the function's.
      ...(network && !managed
        ? {
            vpc: {
              vpc: network.vpc,
              subnets: network.functionSubnets,
              securityGroup: network.functionSecurityGroup,
            },
          }
        : {}),
      environment: {
        ...shared,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAMES.stream,
        QUEUE_URL: queue.queue.queueUrl,
        ATTACHMENTS_BUCKET: attachments.bucket.bucketName,
        // Without REDIS_URL the handler reads DynamoDB directly and limits per execution environment.
        ...(cache
          ? {
              REDIS_URL: cache.url,
              REDIS_CLUSTER: 'true',
              REDIS_AUTH: 'iam',
              REDIS_USER: cache.userName,
              REDIS_CACHE_NAME: cache.cacheName,
            }
          : {}),
        MODEL_ID: config.modelId,
        ...(otherModels.length > 0 ? { ALLOWED_MODEL_IDS: otherModels.map((m) => m.id).join(',') } : {}),
        ...(config.knowledgeBaseId ? { KNOWLEDGE_BASE_ID: config.knowledgeBaseId } : {}),
        RAG_RELEVANCE_FLOOR: String(config.ragRelevanceFloor),
        ...(config.sourceBaseUrl ? { SOURCE_BASE_URL: config.sourceBaseUrl } : {}),
        ...(config.guardrailId
          ? {
              GUARDRAIL_ID: config.guardrailId,
              GUARDRAIL_VERSION: config.guardrailVersion,
              GUARDRAIL_STREAM_MODE: config.guardrailStreamMode,
            }
          : {}),
        AUTH_ISSUER: auth.issuer,
        AUTH_AUDIENCE: auth.client.userPoolClientId,
        AUTH_JWKS: auth.jwks,
        FLUSH_PADDING_BYTES: String(config.flushPaddingBytes),
        MODEL_TIMEOUT_MS: String(modelTimeoutMs(config.streamTimeoutSeconds)),
        AWS_CONNECT_TIMEOUT_MS: String(DEFAULTS.awsConnectTimeoutMs),
        AWS_REQUEST_TIMEOUT_MS: String(DEFAULTS.awsRequestTimeoutMs),
        LIMIT_TURNS_PER_MINUTE: String(config.limitTurnsPerMinute),
        LIMIT_CONCURRENT_STREAMS: String(config.limitConcurrentStreams),
        LIMIT_TOKENS_PER_DAY: String(config.limitTokensPerDay),
      },
    });
    this.persistFunction = new ChatFunction(this, 'Persist', {
      entry: 'functions/persist/handler.ts',
      description: 'Persists chat messages from SQS FIFO to DynamoDB',
      memorySize: 512,
      timeout: Duration.seconds(QUEUE_SETTINGS.consumerTimeoutSeconds),
      logRetention,
      environment: {
        ...shared,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAMES.persist,
        TITLES: String(config.titles),
        ATTACHMENTS_BUCKET: attachments.bucket.bucketName,
        ...(titleModel ? { TITLE_MODEL_ID: titleModel.id } : {}),
      },
    });
    const stream = this.streamFunction.fn;
    const persist = this.persistFunction.fn;
    const reserved = managed ? undefined : config.streamReservedConcurrency;
    if (reserved !== undefined) {
      // Fails in seconds, before the VPC, endpoints and cache exist, on an account without the headroom.
      const headroom = this.concurrencyHeadroom(reserved, logRetention);
      for (const first of [network, cache, stream]) first?.node.addDependency(headroom);
    }
    // The probe is the first caller of each model: the functions exist only once it answered.
    for (const probe of modelAccess.chatProbes) stream.node.addDependency(probe);
    if (modelAccess.titleProbe) persist.node.addDependency(modelAccess.titleProbe);
    if (managed && network) {
      const managedInstances = new ManagedInstances(this, 'ManagedInstances', {
        subnets: network.vpc.selectSubnets(network.functionSubnets).subnets,
        securityGroup: network.functionSecurityGroup,
        maxVCpus: config.managedInstancesMaxVCpus,
        logRetention,
      });
      managedInstances.attach(stream, config.perEnvironmentMaxConcurrency);
      Annotations.of(managedInstances).addWarningV2(
        'chat:managedInstancesStreaming',
        "UNVERIFIED: chat:compute=managed-instances. AWS's Lambda documentation does not state that response streaming through a Function URL works for functions on Lambda Managed Instances (only the Lambda Web Adapter's documentation says it does). After the deploy, prove it with `npm run smoke` against the FunctionUrl output before anyone relies on it.",
      );
    }

    stream.addToRolePolicy(
      new PolicyStatement({ actions: TABLE_ACTIONS.stream.table, resources: [data.table.tableArn] }),
    );
    stream.addToRolePolicy(
      new PolicyStatement({ actions: TABLE_ACTIONS.stream.index, resources: [data.activityIndexArn] }),
    );
    persist.addToRolePolicy(
      new PolicyStatement({ actions: TABLE_ACTIONS.persist.table, resources: [data.table.tableArn] }),
    );
    stream.addToRolePolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queue.queueArn] }),
    );
    attachments.grantTurnsAndDeletes(stream);
    attachments.grantDiscards(persist);
    cache?.grantConnect(stream);
    // ConverseStream is authorized as InvokeModelWithResponseStream; the stream function calls nothing else.
    if (stream.role)
      for (const chatModel of [model, ...otherModels])
        modelAccess.grantInvoke(stream.role, ['bedrock:InvokeModelWithResponseStream'], chatModel);
    // Titles are one Converse call: InvokeModel only, on the title model.
    if (titleModel) modelAccess.grantInvoke(persist.role as IRole, ['bedrock:InvokeModel'], titleModel);
    if (guardrail) {
      stream.addToRolePolicy(
        new PolicyStatement({ actions: ['bedrock:ApplyGuardrail'], resources: guardrail.resources }),
      );
      for (const role of [stream.role, modelAccess.probeRole])
        for (const resource of guardrail.resources.filter((r) => r.includes('*')))
          if (role)
            acknowledgeWildcardResource(
              role,
              resource,
              'A cross-Region guardrail profile is authorized in whichever Region of its geography serves the request.',
            );
    }
    if (config.knowledgeBaseId) {
      stream.addToRolePolicy(
        new PolicyStatement({
          actions: ['bedrock:Retrieve'],
          resources: [
            `arn:${this.partition}:bedrock:${this.region}:${this.account}:knowledge-base/${config.knowledgeBaseId}`,
          ],
        }),
      );
    }
    persist.addEventSource(
      new SqsEventSource(queue.queue, {
        batchSize: QUEUE_SETTINGS.batchSize,
        reportBatchItemFailures: true,
        // The cap the local event source models: a burst of new conversations (one message group each)
        // never takes more than this many consumer environments, nor writes with more at once.
        maxConcurrency: QUEUE_SETTINGS.maxConcurrency,
      }),
    );
    const jwksRefresh = auth.scheduleRefresh(stream, config.jwksRefreshMinutes, {
      publishToLatestPublished: managed,
    });

    // Behind API Gateway there is no Function URL at all: nothing may reach the function around the WAF.
    const frontDoor =
      config.frontDoor === 'apigateway'
        ? new ApiFrontDoor(this, 'FrontDoor', {
            streamFunction: stream,
            timeout: Duration.seconds(config.streamTimeoutSeconds),
            rateLimit: config.apiRateLimit,
            burstLimit: config.apiBurstLimit,
            requestsPerIpPer5Minutes: config.wafRequestsPerIpPer5Minutes,
            logRetention,
          })
        : undefined;
    const url = frontDoor
      ? undefined
      : stream.addFunctionUrl({
          authType: FunctionUrlAuthType.NONE,
          invokeMode: InvokeMode.RESPONSE_STREAM,
          ...(config.allowedOrigins.length > 0 ? { cors: functionUrlCors(config.allowedOrigins) } : {}),
        });
    // No trailing slash (PageConfig.apiUrl); the Function URL ends in one.
    const apiUrl = frontDoor?.url ?? `https://${Fn.select(2, Fn.split('/', url?.url ?? ''))}`;

    const web = webDir
      ? new Web(this, 'Web', {
          assetDir: webDir,
          apiUrl,
          signInUrl: auth.signInUrl(),
          auth: (origin) => auth.allowManagedLogin(origin, deployNonce),
          logRetention,
        })
      : undefined;
    const pageOrigins = [...(web ? [web.origin] : []), ...config.allowedOrigins];
    if (frontDoor && pageOrigins.length > 0) {
      frontDoor.allowOrigins(pageOrigins);
      // API Gateway cannot add CORS headers to a streamed proxy response: the function adds them.
      stream.addEnvironment('CORS_ALLOWED_ORIGINS', pageOrigins.join(','));
    }
    if (url && web) this.allowPageOrigin(url, pageOrigins, logRetention, deployNonce);
    if (web) new CfnOutput(this, 'WebUrl', { value: web.url });

    new Observability(this, 'Observability', {
      streamFunction: stream,
      persistFunction: persist,
      queue: queue.queue,
      deadLetterQueue: queue.deadLetterQueue,
      cacheThrottledCommands: cache?.metricThrottledCommands(),
      ...(config.jwksRefreshMinutes > 0 ? { jwksRefreshFunction: jwksRefresh.fn } : {}),
      streamTimeoutSeconds: config.streamTimeoutSeconds,
      alarmEmail: config.alarmEmail,
      production: config.production,
      metricsNamespace,
    });

    if (url) new CfnOutput(this, 'FunctionUrl', { value: url.url });
    new CfnOutput(this, 'ApiUrl', { value: apiUrl });
    new CfnOutput(this, 'UserPoolId', { value: auth.userPool.userPoolId });
    new CfnOutput(this, 'UserPoolClientId', { value: auth.client.userPoolClientId });
    new CfnOutput(this, 'TableName', { value: data.table.tableName });
    new CfnOutput(this, 'QueueUrl', { value: queue.queue.queueUrl });
    new CfnOutput(this, 'StreamFunctionName', { value: stream.functionName });
    giveCdkHandlersLogGroups(this, logRetention);
  }

  /**
   * Writes the Function URL's CORS with the page's CloudFront origin at deploy time (a custom resource
   * after the URL and the distribution exist): the page's CSP names the URL, so CloudFormation cannot
   * also give the URL the distribution's domain without a dependency cycle.
   */
  private allowPageOrigin(url: FunctionUrl, origins: string[], logRetention: RetentionDays, nonce: string) {
    const writer = new ChatFunction(this, 'FunctionUrlCors', {
      entry: 'lib/custom-resources/function-url-cors.ts',
      description: "Deploy time: allows the chat page's CloudFront origin in the Function URL's CORS",
      memorySize: 256,
      timeout: Duration.seconds(60),
      logRetention,
      environment: {},
    });
    writer.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['lambda:UpdateFunctionUrlConfig'],
        resources: [this.streamFunction.fn.functionArn],
      }),
    );
    const cors = functionUrlCors(origins);
    const corsResource = new CustomResource(this, 'FunctionUrlCorsSettings', {
      serviceToken: deployTimeProvider(this, 'FunctionUrlCorsProvider', writer.fn, logRetention).serviceToken,
      resourceType: 'Custom::FunctionUrlCors',
      properties: {
        FunctionName: this.streamFunction.fn.functionName,
        Cors: {
          AllowOrigins: cors.allowedOrigins,
          AllowMethods: cors.allowedMethods,
          AllowHeaders: cors.allowedHeaders,
          ExposeHeaders: cors.exposedHeaders,
          MaxAge: cors.maxAge?.toSeconds(),
        },
        DeployNonce: nonce,
      },
    });
    // After CloudFormation wrote the URL's own settings, never before.
    corsResource.node.addDependency(url);
  }

  /** The deploy-time check that the account can reserve `reserved` executions for the stream function. */
  private concurrencyHeadroom(reserved: number, logRetention: RetentionDays): CustomResource {
    const checker = new ChatFunction(this, 'ConcurrencyHeadroom', {
      entry: 'lib/custom-resources/concurrency-headroom.ts',
      description:
        "Deploy time: checks the account's unreserved Lambda concurrency before reserving the stream function's",
      memorySize: 256,
      timeout: Duration.seconds(30),
      logRetention,
      environment: {},
    });
    checker.fn.addToRolePolicy(
      new PolicyStatement({ actions: ['lambda:GetAccountSettings'], resources: ['*'] }),
    );
    if (checker.fn.role)
      acknowledgeWildcardResource(
        checker.fn.role,
        '*',
        'lambda:GetAccountSettings reads account-level quotas and has no resource type.',
      );
    return new CustomResource(this, 'ConcurrencyHeadroomCheck', {
      serviceToken: deployTimeProvider(this, 'ConcurrencyHeadroomProvider', checker.fn, logRetention)
        .serviceToken,
      resourceType: 'Custom::ConcurrencyHeadroom',
      properties: { ReservedConcurrency: reserved },
    });
  }

  /** Without a VPC these keys do nothing: say so rather than ignore them silently. */
  private warnNetworkKeysUnused(config: ChatStackConfig): void {
    const unused = [
      ...(config.natGateway ? ['chat:natGateway'] : []),
      ...(config.availabilityZones.length > 0 ? ['chat:availabilityZones'] : []),
    ];
    if (unused.length > 0)
      Annotations.of(this).addWarningV2(
        'chat:cacheOffNetworkKeys',
        `${unused.join(' and ')} ignored: chat:cache=off builds no VPC.`,
      );
  }

  /** A model id as parsed by the config schema, checked against the stack's Region when it has one. */
  private checkedModel(id: string, key: string): ModelRef {
    const model = parseModelId(id);
    if ('error' in model) throw new Error(model.error);
    const { error, warning } = checkModelRegion(model, this.region, key);
    if (error) Annotations.of(this).addError(error);
    if (warning)
      Annotations.of(this).addWarningV2(
        key === 'chat:modelId'
          ? 'chat:modelRegion'
          : key === 'chat:titleModelId'
            ? 'chat:titleModelRegion'
            : 'chat:allowedModelRegion',
        warning,
      );
    return model;
  }

  /**
   * The guardrail every turn goes through, and what ApplyGuardrail must be allowed on: the guardrail and,
   * with a cross-Region guardrail profile, that profile in every Region (the profile ARN that is
   * authorized follows where the request is routed).
   */
  private guardrail(config: ChatStackConfig): { id: string; version: string; resources: string[] } {
    const id = config.guardrailId ?? '';
    const guardrail = id.startsWith('arn:')
      ? id
      : `arn:${this.partition}:bedrock:${this.region}:${this.account}:guardrail/${id}`;
    const profile = config.guardrailProfileId
      ? `arn:${this.partition}:bedrock:*:${this.account}:guardrail-profile/${config.guardrailProfileId}`
      : undefined;
    if (config.production && config.guardrailVersion === 'DRAFT')
      Annotations.of(this).addWarningV2(
        'chat:guardrailVersion',
        'chat:guardrailVersion is DRAFT: edits to the draft change production behaviour at once; pin a numbered version.',
      );
    return { id, version: config.guardrailVersion, resources: profile ? [guardrail, profile] : [guardrail] };
  }
}
