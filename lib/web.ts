import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { DefaultStackSynthesizer, Duration, Fn, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import {
  AllowedMethods,
  CachePolicy,
  Distribution,
  HeadersFrameOption,
  HeadersReferrerPolicy,
  HttpVersion,
  ResponseHeadersPolicy,
  ViewerProtocolPolicy,
} from 'aws-cdk-lib/aws-cloudfront';
import { S3BucketOrigin } from 'aws-cdk-lib/aws-cloudfront-origins';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { BlockPublicAccess, Bucket, BucketEncryption } from 'aws-cdk-lib/aws-s3';
import { BucketDeployment, CacheControl, Source } from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { type PageConfig, pageSecurityPolicy } from '../functions/contracts/page-config.ts';
import { nagResourceName } from './nag.ts';

const ROOT = join(import.meta.dirname, '..');

/** Where chat:webAssetPath points (relative to the project root), or why it cannot be hosted. */
export function webAssets(path: string): { dir: string } | { error: string } {
  const dir = isAbsolute(path) ? path : join(ROOT, path);
  if (existsSync(join(dir, 'index.html'))) return { dir };
  return {
    error: `chat:web=true hosts the built chat page from ${path}, which has no index.html: run \`npm run build:web\` first (or point chat:webAssetPath at a built page).`,
  };
}

export interface WebProps {
  /** The built page (a directory with index.html). */
  assetDir: string;
  /** The API the page calls: its host is the CSP's connect-src. */
  apiUrl: string;
  /** Where the page fetches tokens (managed login's domain): connect-src too. */
  signInUrl: string;
  /**
   * How the page signs in, written to /config.json with apiUrl. Known only once the distribution exists
   * (the sign-in's redirect is the page's own origin), hence a function of it.
   */
  auth: (origin: string) => PageConfig['auth'];
  logRetention: RetentionDays;
}

/**
 * The chat page on S3 + CloudFront: a private bucket (all public access blocked, TLS enforced) that only
 * this distribution reads, through origin access control; HTTPS only (HTTP redirects); security headers
 * on every response; the built page and a runtime `config.json` deployed together, every object
 * revalidated on each load (so no invalidation is needed).
 */
export class Web extends Construct {
  readonly distribution: Distribution;
  /** `https://<distribution domain>`: the origin the Function URL's CORS must allow. */
  readonly origin: string;
  readonly url: string;

  constructor(scope: Construct, id: string, props: WebProps) {
    super(scope, id);
    const bucket = new Bucket(this, 'Site', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.S3_MANAGED,
      // A build output, deployed again by every deploy: nothing in it is worth keeping.
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });
    const noLogs =
      'The bucket holds only the public build of the chat page and is read only by CloudFront (origin access control); page loads carry no user data and the API calls that do are logged by the functions.';
    Validations.of(bucket).acknowledge({ id: 'AwsSolutions-S1', reason: noLogs });

    // Only the API host (not any Function URL) and the sign-in domain's token endpoints may be reached.
    const hostOf = (url: string) => Fn.select(2, Fn.split('/', url));
    const csp = pageSecurityPolicy(
      [`https://${hostOf(props.apiUrl)}`, `https://${hostOf(props.signInUrl)}`],
      {
        upgradeInsecure: true,
      },
    );
    const headers = new ResponseHeadersPolicy(this, 'SecurityHeaders', {
      comment: 'Chat page: HSTS, CSP, nosniff, no framing, referrer policy',
      securityHeadersBehavior: {
        strictTransportSecurity: {
          accessControlMaxAge: Duration.days(730),
          includeSubdomains: true,
          override: true,
        },
        contentSecurityPolicy: { contentSecurityPolicy: csp, override: true },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: HeadersFrameOption.DENY, override: true },
        referrerPolicy: {
          referrerPolicy: HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
          override: true,
        },
      },
    });
    this.distribution = new Distribution(this, 'Distribution', {
      comment: 'Streaming chat page',
      defaultRootObject: 'index.html',
      httpVersion: HttpVersion.HTTP2_AND_3,
      defaultBehavior: {
        origin: S3BucketOrigin.withOriginAccessControl(bucket),
        viewerProtocolPolicy: ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: headers,
        compress: true,
      },
      // A reload on a client-side route gets the page, not S3's 403 for a key that does not exist.
      errorResponses: [403, 404].map((httpStatus) => ({
        httpStatus,
        responseHttpStatus: 200,
        responsePagePath: '/index.html',
        ttl: Duration.seconds(0),
      })),
    });
    Validations.of(this.distribution).acknowledge(
      {
        id: 'AwsSolutions-CFR1',
        reason:
          'The page is for everyone the Cognito user pool admits, wherever they are; a geo restriction is a per-deployment business decision.',
      },
      {
        id: 'AwsSolutions-CFR2',
        reason:
          'The distribution serves static files only; the API is the Function URL, which takes no WAF and is protected by JWT verification, per-user limits and a concurrency cap. A web ACL here would guard nothing of value for its monthly cost.',
      },
      { id: 'AwsSolutions-CFR3', reason: noLogs },
      {
        id: 'AwsSolutions-CFR4',
        reason:
          'The distribution uses the CloudFront default certificate (*.cloudfront.net), with which CloudFront does not allow choosing the minimum TLS version; a custom domain with an ACM certificate would pin TLSv1.2_2021.',
      },
    );
    this.origin = `https://${this.distribution.distributionDomainName}`;
    this.url = `${this.origin}/`;
    const config: PageConfig = { apiUrl: props.apiUrl, auth: props.auth(this.origin) };

    const deployment = new BucketDeployment(this, 'Deploy', {
      sources: [Source.asset(props.assetDir), Source.jsonData('config.json', config)],
      destinationBucket: bucket,
      // No invalidation: every object is revalidated on every load (an ETag makes that a 304), so a
      // deploy is visible at once, config included, and a deploy never waits on CloudFront's
      // invalidation waiter, which times out now and then and leaves the stack to roll back.
      cacheControl: [CacheControl.noCache()],
      logGroup: new LogGroup(this, 'DeployLogs', {
        retention: props.logRetention,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });
    this.acknowledgeDeploymentFunction(deployment, `${bucket.bucketArn}/*`);
  }

  /**
   * CDK's BucketDeployment runs one function of its own (a stack-level singleton, CDK's code and runtime
   * choice) that copies the assets from CDK's staging bucket into the site bucket; its grants are CDK's,
   * scoped to those two buckets.
   */
  private acknowledgeDeploymentFunction(deployment: BucketDeployment, siteObjects: string): void {
    const handler = deployment.handlerRole.node.scope;
    if (!handler) return;
    const stack = Stack.of(this);
    // CDK's staging bucket, as cdk-nag prints it: a pinned Region (chat:region) appears literally.
    // With a pinned Region, @aws-cdk/core:enablePartitionLiterals writes the partition literally too.
    const [partition, account, region] = [
      [stack.partition, '<AWS::Partition>'],
      [stack.account, '<AWS::AccountId>'],
      [stack.region, '<AWS::Region>'],
    ].map(([value, placeholder]) => (Token.isUnresolved(value) ? placeholder : value));
    const staging = `arn:${partition}:s3:::cdk-${DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets-${account}-${region}/*`;
    const copy =
      "CDK's BucketDeployment grant: read the page's asset from CDK's staging bucket and replace the objects of the site bucket (prefix actions such as GetObject*, DeleteObject* and List* cover the calls `aws s3 sync` makes).";
    Validations.of(handler).acknowledge(
      {
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          "CDK's BucketDeployment function writes its logs with it, to its own log group with a retention.",
      },
      ...['s3:GetBucket*', 's3:GetObject*', 's3:List*', 's3:Abort*', 's3:DeleteObject*'].map((action) => ({
        id: `AwsSolutions-IAM5[Action::${action}]`,
        reason: copy,
      })),
      { id: `AwsSolutions-IAM5[Resource::${staging}]`, reason: copy },
      { id: `AwsSolutions-IAM5[Resource::${nagResourceName(stack, siteObjects)}]`, reason: copy },
      {
        id: 'AwsSolutions-L1',
        reason:
          "CDK's BucketDeployment function runs on the Python runtime CDK pins together with the AWS CLI layer it ships; it runs only during deploys.",
      },
    );
  }
}
