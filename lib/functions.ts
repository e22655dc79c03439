import { join } from 'node:path';
import { CfnResource, type Duration, RemovalPolicy, type Stack, Validations } from 'aws-cdk-lib';
import type { ISecurityGroup, IVpc, SubnetSelection } from 'aws-cdk-lib/aws-ec2';
import { Architecture, CfnFunction, LoggingFormat, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, type NodejsFunctionProps, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { bundleAliases } from './bundling/aliases.ts';
import { FUNCTION_NODE_OPTIONS } from './bundling/node-options.ts';

const ROOT = join(import.meta.dirname, '..');

export interface ChatFunctionProps {
  entry: string;
  description: string;
  memorySize: number;
  timeout: Duration;
  logRetention: RetentionDays;
  environment: Record<string, string>;
  vpc?: { vpc: IVpc; subnets: SubnetSelection; securityGroup: ISecurityGroup };
  /** Undefined leaves the function on the account's unreserved pool. */
  reservedConcurrency?: number;
  /**
   * Where the function's AWS credentials come from: `environment` (Lambda's on-demand environments, the
   * default) bundles only that provider; `chain` keeps the SDK's whole default chain, for Managed
   * Instances, which AWS does not document as handing credentials in the environment.
   */
  credentials?: 'environment' | 'chain';
}

/**
 * A Node.js 24 arm64 function bundled by the local esbuild (no Docker): ESM, minified, the AWS SDK
 * bundled rather than the runtime's copy (pinned versions, faster cold start). A source map without
 * the sources' text ships beside the bundle and `--enable-source-maps` turns production stack traces
 * back into file:line of the TypeScript.
 */
export class ChatFunction extends Construct {
  readonly fn: NodejsFunction;

  constructor(scope: Construct, id: string, props: ChatFunctionProps) {
    super(scope, id);
    const logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const settings: NodejsFunctionProps = {
      entry: join(ROOT, props.entry),
      projectRoot: ROOT,
      depsLockFilePath: join(ROOT, 'package-lock.json'),
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      logGroup,
      loggingFormat: LoggingFormat.JSON,
      environment: { NODE_ENV: 'production', NODE_OPTIONS: FUNCTION_NODE_OPTIONS, ...props.environment },
      ...(props.reservedConcurrency !== undefined
        ? { reservedConcurrentExecutions: props.reservedConcurrency }
        : {}),
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        metafile: true,
        // Everything bundled, the AWS SDK too: the versions the project pins, never the runtime's copy.
        externalModules: [],
        mainFields: ['module', 'main'],
        // Some CommonJS dependencies call require(); ESM output needs it defined.
        banner: "import{createRequire as __cr}from'module';const require=__cr(import.meta.url);",
        esbuildArgs: {
          '--alias': Object.entries(bundleAliases(props.credentials ?? 'environment')).map(
            ([name, path]) => `${name}=${path}`,
          ),
        },
        forceDockerBundling: false,
      },
      ...(props.vpc
        ? { vpc: props.vpc.vpc, vpcSubnets: props.vpc.subnets, securityGroups: [props.vpc.securityGroup] }
        : {}),
    };
    this.fn = new NodejsFunction(this, 'Function', settings);
    const role = this.fn.role;
    if (role) {
      Validations.of(role).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          'The Lambda service writes the function logs with it; the function logs only to its own log group, which has a retention.',
      });
      if (props.vpc) {
        Validations.of(role).acknowledge({
          id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
          reason:
            'Lambda needs it to attach the function to the VPC (ENI management); it grants no data access.',
        });
      }
    }
  }
}

/**
 * CDK's own custom-resource handlers (the VPC's default-SG stripper, the page bucket's auto-delete) get no
 * log group: Lambda would create `/aws/lambda/<name>` at first run, kept forever and left after a destroy.
 * Each gets one of the stack's, with its retention, which the handler depends on, so the group exists
 * before the handler's first run and is deleted after its last (the delete that runs the handler).
 * Call once every construct exists.
 */
export function giveCdkHandlersLogGroups(stack: Stack, retention: RetentionDays): void {
  for (const node of stack.node.findAll()) {
    if (!(node instanceof CfnResource) || node instanceof CfnFunction) continue;
    if (node.cfnResourceType !== 'AWS::Lambda::Function' || !node.node.scope) continue;
    const logGroup = new LogGroup(node.node.scope, `${node.node.id}Logs`, {
      retention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    node.addPropertyOverride('LoggingConfig.LogGroup', logGroup.logGroupName);
  }
}
