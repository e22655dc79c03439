import {
  Aws,
  CfnOutput,
  CustomResource,
  Duration,
  type RemovalPolicy,
  Stack,
  Validations,
} from 'aws-cdk-lib';
import {
  AccountRecovery,
  CfnManagedLoginBranding,
  ManagedLoginVersion,
  Mfa,
  OAuthScope,
  UserPool,
  type UserPoolClient,
} from 'aws-cdk-lib/aws-cognito';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { PageAuthConfig } from '../functions/contracts/page-config.ts';
import { deployTimeProvider } from './deploy-time.ts';
import { ChatFunction } from './functions.ts';

export interface AuthProps {
  removalPolicy: RemovalPolicy;
  deletionProtection: boolean;
  logRetention: RetentionDays;
  /** Changes per synth, so the JWKS is fetched again on every deploy. */
  jwksNonce: string;
}

/** What the page asks for: an OpenID Connect sign-in whose access token names the app client. */
const PAGE_SCOPES = [OAuthScope.OPENID, OAuthScope.EMAIL, OAuthScope.PROFILE];

/**
 * How long a refresh token lives. A working day: the page signs in again the next morning, and a token
 * lifted from the page is worth half a day at most (sign-out revokes it at once).
 */
const REFRESH_TOKEN_VALIDITY = Duration.hours(12);

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
  private signInBase: string | undefined;

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
      // the hosted page signs in through managed login (allowManagedLogin). Never USER_PASSWORD_AUTH.
      authFlows: { userSrp: true, adminUserPassword: true },
      // A public client: a browser cannot keep a secret, PKCE stands in for it.
      generateSecret: false,
      // No redirect exists until the page does: CDK's default (implicit and code grants to
      // https://example.com) would only be an open door. allowManagedLogin opens the code grant.
      disableOAuth: true,
      preventUserExistenceErrors: true,
      enableTokenRevocation: true,
      idTokenValidity: Duration.hours(1),
      accessTokenValidity: Duration.hours(1),
      refreshTokenValidity: REFRESH_TOKEN_VALIDITY,
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
   * `https://<prefix>.auth.<region>.amazoncognito.com`, the managed login domain (created on first use):
   * the page's CSP names it before the page's own origin exists.
   */
  signInUrl(): string {
    if (!this.signInBase) {
      const stack = Stack.of(this);
      // Prefixes are global per Region: the stack name and the account make it this stage's own.
      const domain = this.userPool.addDomain('SignIn', {
        cognitoDomain: { domainPrefix: `${stack.stackName.toLowerCase()}-${Aws.ACCOUNT_ID}` },
        managedLoginVersion: ManagedLoginVersion.NEWER_MANAGED_LOGIN,
      });
      // Managed login shows nothing for a client without a style; Cognito's own look is enough here.
      new CfnManagedLoginBranding(this, 'SignInBranding', {
        userPoolId: this.userPool.userPoolId,
        clientId: this.client.userPoolClientId,
        useCognitoProvidedValues: true,
      }).node.addDependency(domain);
      this.signInBase = domain.baseUrl();
    }
    return this.signInBase;
  }

  /**
   * Cognito managed login for the page at `origin`: a user pool domain, the app client opened for the
   * authorization code grant only (PKCE, no secret; no implicit grant) with the page's own origin as
   * its one callback and sign-out URL, and Cognito's default branding. Managed login brings TOTP,
   * password reset by e-mail and lockout, none of which the page has to build. Returns the page's
   * sign-in settings (functions/contracts/page-config.ts).
   */
  allowManagedLogin(origin: string, nonce: string): Extract<PageAuthConfig, { mode: 'oauth' }> {
    const page = `${origin}/`;
    const writer = new ChatFunction(this, 'PageSignIn', {
      entry: 'lib/custom-resources/page-sign-in.ts',
      description: "Deploy time: opens the app client's code grant for the chat page's origin",
      memorySize: 256,
      timeout: Duration.seconds(60),
      logRetention: this.logRetention,
      environment: {},
    });
    writer.fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['cognito-idp:DescribeUserPoolClient', 'cognito-idp:UpdateUserPoolClient'],
        resources: [this.userPool.userPoolArn],
      }),
    );
    const settings = new CustomResource(this, 'PageSignInSettings', {
      serviceToken: deployTimeProvider(this, 'PageSignInProvider', writer.fn, this.logRetention).serviceToken,
      resourceType: 'Custom::PageSignIn',
      properties: {
        UserPoolId: this.userPool.userPoolId,
        ClientId: this.client.userPoolClientId,
        AllowedOAuthFlows: ['code'],
        AllowedOAuthScopes: PAGE_SCOPES.map((scope) => scope.scopeName),
        CallbackURLs: [page],
        LogoutURLs: [page],
        DeployNonce: nonce,
      },
    });
    // After CloudFormation wrote the client's own settings, never before.
    settings.node.addDependency(this.client);
    const base = this.signInUrl();
    return {
      mode: 'oauth',
      clientId: this.client.userPoolClientId,
      authorizeEndpoint: `${base}/oauth2/authorize`,
      tokenEndpoint: `${base}/oauth2/token`,
      revokeEndpoint: `${base}/oauth2/revoke`,
      logoutEndpoint: `${base}/logout`,
      scopes: PAGE_SCOPES.map((scope) => scope.scopeName),
    };
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
