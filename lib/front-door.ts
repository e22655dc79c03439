import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  EndpointType,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  type ProxyResource,
  ResponseTransferMode,
  RestApi,
} from 'aws-cdk-lib/aws-apigateway';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { CfnWebACL, CfnWebACLAssociation } from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { CORS_SETTINGS } from '../functions/contracts/cors.ts';

export interface ApiFrontDoorProps {
  streamFunction: IFunction;
  /** The integration's limit: the function's own timeout (response streaming allows up to 15 minutes). */
  timeout: Duration;
  /** Stage throttling for the whole API: steady requests per second and burst. */
  rateLimit: number;
  burstLimit: number;
  /** WAF rate-based rule: requests one IP may make in any 5 minutes before WAF blocks it. */
  requestsPerIpPer5Minutes: number;
  logRetention: RetentionDays;
}

/** Managed rule groups in front of the API, each a group of AWS's own rules with no extra capacity cost. */
const MANAGED_RULES = [
  'AWSManagedRulesCommonRuleSet',
  'AWSManagedRulesKnownBadInputsRuleSet',
  'AWSManagedRulesAmazonIpReputationList',
] as const;

/** The stage the API is deployed to: the page's apiUrl ends in it. */
export const API_STAGE = 'api';

/**
 * `-c chat:frontDoor=apigateway`: the stream function behind an API Gateway REST API whose Lambda proxy
 * integration streams the response (responseTransferMode STREAM, launched November 2025), with stage
 * throttling, access logs and an AWS WAF web ACL (AWS managed rules and a per-IP rate rule). JWTs are
 * still verified in the function; API Gateway adds the edge the Function URL cannot have.
 */
export class ApiFrontDoor extends Construct {
  readonly api: RestApi;
  /** `https://<api>.execute-api.<region>.<suffix>/api`, without a trailing slash (PageConfig.apiUrl). */
  readonly url: string;
  private readonly proxy: ProxyResource;

  constructor(scope: Construct, id: string, props: ApiFrontDoorProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.api = new RestApi(this, 'Api', {
      description: 'Streaming chat API (Lambda response streaming through API Gateway)',
      endpointConfiguration: { types: [EndpointType.REGIONAL] },
      // Execution logs need the account-wide API Gateway CloudWatch role, which no one stack should own.
      cloudWatchRole: false,
      deployOptions: {
        stageName: API_STAGE,
        throttlingRateLimit: props.rateLimit,
        throttlingBurstLimit: props.burstLimit,
        accessLogDestination: new LogGroupLogDestination(accessLogs),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields(),
        loggingLevel: MethodLoggingLevel.OFF,
        metricsEnabled: true,
      },
    });
    const integration = new LambdaIntegration(props.streamFunction, {
      proxy: true,
      responseTransferMode: ResponseTransferMode.STREAM,
      timeout: props.timeout,
    });
    this.api.root.addMethod('ANY', integration);
    this.proxy = this.api.root.addProxy({ defaultIntegration: integration, anyMethod: true });
    this.url = `https://${this.api.restApiId}.execute-api.${stack.region}.${stack.urlSuffix}/${API_STAGE}`;
    this.protect(props.requestsPerIpPer5Minutes);
    this.acknowledge();
  }

  /**
   * Answers browsers' preflights for `origins` in API Gateway (the Function URL answered them in Lambda
   * itself); added once the page's origin exists.
   */
  allowOrigins(origins: string[]): void {
    for (const resource of [this.api.root, this.proxy])
      resource.addCorsPreflight({
        allowOrigins: origins,
        allowMethods: [...CORS_SETTINGS.allowMethods],
        allowHeaders: [...CORS_SETTINGS.allowHeaders],
        maxAge: Duration.seconds(CORS_SETTINGS.maxAgeSeconds),
      });
  }

  private protect(requestsPerIpPer5Minutes: number): void {
    const metric = (name: string) => ({
      cloudWatchMetricsEnabled: true,
      metricName: name,
      sampledRequestsEnabled: true,
    });
    const acl = new CfnWebACL(this, 'WebAcl', {
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: metric('StreamingChatApi'),
      rules: [
        {
          name: 'RequestsPerIp',
          priority: 0,
          action: { block: {} },
          statement: {
            rateBasedStatement: {
              limit: requestsPerIpPer5Minutes,
              evaluationWindowSec: 300,
              aggregateKeyType: 'IP',
            },
          },
          visibilityConfig: metric('RequestsPerIp'),
        },
        ...MANAGED_RULES.map((name, i) => ({
          name,
          priority: i + 1,
          overrideAction: { none: {} },
          statement: { managedRuleGroupStatement: { vendorName: 'AWS', name } },
          visibilityConfig: metric(name),
        })),
      ],
    });
    new CfnWebACLAssociation(this, 'WebAclAssociation', {
      resourceArn: this.api.deploymentStage.stageArn,
      webAclArn: acl.attrArn,
    });
  }

  private acknowledge(): void {
    const methods = this.api.methods.map((m) => m.node.defaultChild).filter((c) => c !== undefined);
    for (const method of methods)
      Validations.of(method).acknowledge(
        {
          id: 'AwsSolutions-APIG4',
          reason:
            'Every request is authenticated in the function (Cognito JWT, ID or access token, verified against an inline JWKS; a forged key id is refused in about a millisecond); a Cognito authorizer without scopes accepts ID tokens only, and preflights must pass unauthenticated.',
        },
        {
          id: 'AwsSolutions-COG4',
          reason:
            'The Cognito user pool is checked by the function for every route (see APIG4); an API Gateway authorizer would duplicate it for ID tokens only.',
        },
      );
    Validations.of(this.api.deploymentStage).acknowledge({
      id: 'AwsSolutions-APIG6',
      reason:
        'Access logs are on (JSON, own log group with retention); execution logs need the account-wide API Gateway CloudWatch role, which a single application stack must not take over.',
    });
    Validations.of(this.api).acknowledge({
      id: 'AwsSolutions-APIG2',
      reason:
        'Request bodies are validated by the function (JSON schema per route, 4xx with a JSON body); API Gateway request validation would need a model per route and cannot stream.',
    });
  }
}
