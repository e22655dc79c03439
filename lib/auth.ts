import { CustomResource, Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { AccountRecovery, Mfa, UserPool, type UserPoolClient } from 'aws-cdk-lib/aws-cognito';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ChatFunction } from './functions.ts';

export interface AuthProps {
  removalPolicy: RemovalPolicy;
  logRetention: RetentionDays;
}

/**
 * The Cognito user pool whose JWTs the stream function verifies. The function runs without internet
 * access, so the pool's JWKS is fetched once at deploy time and handed to it (aws-jwt-verify cacheJwks).
 */
export class Auth extends Construct {
  readonly userPool: UserPool;
  readonly client: UserPoolClient;
  readonly issuer: string;
  readonly jwks: string;

  constructor(scope: Construct, id: string, props: AuthProps) {
    super(scope, id);
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
      // SRP for apps; admin password auth lets an operator with IAM credentials fetch a token from the CLI.
      authFlows: { userSrp: true, adminUserPassword: true },
      generateSecret: false,
      preventUserExistenceErrors: true,
      idTokenValidity: Duration.hours(1),
      accessTokenValidity: Duration.hours(1),
    });
    const region = Stack.of(this).region;
    this.issuer = `https://cognito-idp.${region}.amazonaws.com/${this.userPool.userPoolId}`;
    const fetcher = new ChatFunction(this, 'JwksFetch', {
      entry: 'functions/jwks-fetch/handler.ts',
      description: 'Deploy time: fetches the user pool JWKS for the stream function',
      memorySize: 256,
      timeout: Duration.seconds(30),
      logRetention: props.logRetention,
      environment: {},
    });
    const jwks = new CustomResource(this, 'Jwks', {
      serviceToken: fetcher.fn.functionArn,
      properties: { JwksUrl: `${this.issuer}/.well-known/jwks.json` },
    });
    this.jwks = jwks.getAttString('Jwks');
  }
}
