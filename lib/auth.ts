import { CfnOutput, CustomResource, Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { AccountRecovery, Mfa, UserPool, type UserPoolClient } from 'aws-cdk-lib/aws-cognito';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { deployTimeProvider } from './deploy-time.ts';
import { ChatFunction } from './functions.ts';

export interface AuthProps {
  removalPolicy: RemovalPolicy;
  deletionProtection: boolean;
  logRetention: RetentionDays;
  /** Changes per synth, so the JWKS is fetched again on every deploy. */
  jwksNonce: string;
  /**
   * The hosted chat page signs in with USER_PASSWORD_AUTH (InitiateAuth over HTTPS, no SRP library);
   * enabled on the app client only when the page is deployed.
   */
  userPasswordAuth?: boolean;
}

/**
 * The Cognito user pool whose JWTs the stream function verifies. The function runs without internet
 * access, so the pool's JWKS is fetched at deploy time (a custom resource on CDK's Provider framework)
 * and handed to it; `scheduleRefresh` keeps it current between deploys.
 */
export class Auth extends Construct {
  readonly userPool: UserPool;
  readonly client: UserPoolClient;
  readonly issuer: string;
  readonly jwksUrl: string;
  readonly jwks: string;
  private readonly logRetention: RetentionDays;

  constructor(scope: Construct, id: string, props: AuthProps) {
    super(scope, id);
    this.logRetention = props.logRetention;
    this.userPool = new UserPool(this, 'UserPool', {
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      mfa: Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: AccountRecovery.EMAIL_ONLY,
      passwordPolicy: {
        minLength: 12,
        requireDigits: true,
        requireLowercase: true,
        requireUppercase: true,
        requireSymbols: true,
      },
      deletionProtection: props.deletionProtection,
      removalPolicy: props.removalPolicy,
    });
    Validations.of(this.userPool).acknowledge({
      id: 'AwsSolutions-COG2',
      reason:
        'MFA (TOTP) is optional so consumers can use the chat without an authenticator app; set Mfa.REQUIRED for workforce pools.',
    });
    Validations.of(this.userPool).acknowledge({
      id: 'AwsSolutions-COG8',
      reason:
        'The Plus feature plan (threat protection) is billed per active user; enable it per deployment when that cost is justified.',
    });
    this.client = this.userPool.addClient('WebClient', {
      // SRP for apps; admin password auth lets an operator with IAM credentials fetch a token from the CLI;
      // the hosted page (chat:web=true) signs in with USER_PASSWORD_AUTH. Refresh tokens work with each.
      authFlows: { userSrp: true, adminUserPassword: true, userPassword: props.userPasswordAuth ?? false },
      generateSecret: false,
      // No hosted UI or OAuth redirect exists: CDK's default (implicit and code grants to https://example.com)
      // would only be an open door.
      disableOAuth: true,
      preventUserExistenceErrors: true,
      idTokenValidity: Duration.hours(1),
      accessTokenValidity: Duration.hours(1),
    });
    const region = Stack.of(this).region;
    this.issuer = `https://cognito-idp.${region}.amazonaws.com/${this.userPool.userPoolId}`;
    this.jwksUrl = `${this.issuer}/.well-known/jwks.json`;
    const fetcher = new ChatFunction(this, 'JwksFetch', {
      entry: 'lib/custom-resources/jwks-fetch.ts',
      description: 'Deploy time: fetches the user pool JWKS for the stream function',
      memorySize: 256,
      timeout: Duration.seconds(30),
      logRetention: props.logRetention,
      environment: {},
    });
    const jwks = new CustomResource(this, 'Jwks', {
      serviceToken: deployTimeProvider(this, 'JwksProvider', fetcher.fn, props.logRetention).serviceToken,
      resourceType: 'Custom::Jwks',
      properties: { JwksUrl: this.jwksUrl, DeployNonce: props.jwksNonce },
    });
    this.jwks = jwks.getAttString('Jwks');
  }

  /**
   * Every `minutes`, fetch the JWKS and write it into `target`'s AUTH_JWKS when the keys changed (the
   * fetch at deploy time cannot see a rotation that happens later). Also the runbook's manual refresh.
   */
  scheduleRefresh(
    target: IFunction,
    minutes: number,
    options: { publishToLatestPublished?: boolean } = {},
  ): ChatFunction {
    const publish = options.publishToLatestPublished ?? false;
    const refresh = new ChatFunction(this, 'JwksRefresh', {
      entry: 'lib/custom-resources/jwks-refresh.ts',
      description: "Scheduled: refreshes the stream function's JWKS when the user pool's keys change",
      memorySize: 256,
      // With Managed Instances, up to a minute waiting for the update to finish before it is published.
      timeout: Duration.seconds(publish ? 120 : 60),
      logRetention: this.logRetention,
      environment: {
        JWKS_URL: this.jwksUrl,
        TARGET_FUNCTION_NAME: target.functionName,
        ...(publish ? { PUBLISH_TO_LATEST_PUBLISHED: 'true' } : {}),
      },
    });
    refresh.fn.addToRolePolicy(
      new PolicyStatement({
        actions: [
          'lambda:GetFunctionConfiguration',
          'lambda:UpdateFunctionConfiguration',
          // Lambda Managed Instances invoke $LATEST.PUBLISHED: the new keys must be published there.
          ...(publish ? ['lambda:PublishVersion'] : []),
        ],
        resources: [target.functionArn],
      }),
    );
    if (minutes > 0)
      new Rule(this, 'JwksRefreshSchedule', {
        description: 'Refreshes the stream function JWKS between deploys',
        schedule: Schedule.rate(Duration.minutes(minutes)),
        targets: [new LambdaFunction(refresh.fn, { retryAttempts: 2 })],
      });
    new CfnOutput(Stack.of(this), 'JwksRefreshFunctionName', { value: refresh.fn.functionName });
    return refresh;
  }
}
