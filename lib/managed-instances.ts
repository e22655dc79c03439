import { RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { ISecurityGroup, ISubnet } from 'aws-cdk-lib/aws-ec2';
import { Architecture, CapacityProvider, type IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface ManagedInstancesProps {
  subnets: ISubnet[];
  securityGroup: ISecurityGroup;
  /** The fleet's vCPU ceiling: what the capacity can cost at most, and the concurrency cap with it. */
  maxVCpus: number;
  logRetention: RetentionDays;
}

/**
 * A Lambda Managed Instances capacity provider: Lambda launches and patches arm64 instances in the given
 * subnets (the function's network comes from here; a function-level VPC configuration does not apply)
 * and runs several invocations at once in each execution environment. The operator role CDK creates
 * lets Lambda manage those instances.
 */
export class ManagedInstances extends Construct {
  readonly capacityProvider: CapacityProvider;

  constructor(scope: Construct, id: string, props: ManagedInstancesProps) {
    super(scope, id);
    this.capacityProvider = new CapacityProvider(this, 'CapacityProvider', {
      subnets: props.subnets,
      securityGroups: [props.securityGroup],
      architectures: [Architecture.ARM_64],
      maxVCpuCount: props.maxVCpus,
      logGroup: new LogGroup(this, 'Logs', {
        retention: props.logRetention,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    });
    const operator = this.capacityProvider.node.tryFindChild('OperatorRole');
    if (operator)
      Validations.of(operator).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator]',
        reason:
          "The role Lambda assumes to launch, tag and terminate the capacity provider's instances; AWS maintains this policy for exactly that service, scoped to Lambda-managed instances.",
      });
  }

  /**
   * Runs `fn` on the capacity provider, `perEnvironmentMaxConcurrency` invocations per execution
   * environment, published to $LATEST.PUBLISHED (what an unqualified invocation, the Function URL's,
   * runs on Managed Instances).
   */
  attach(fn: IFunction, perEnvironmentMaxConcurrency: number): void {
    this.capacityProvider.addFunction(fn, {
      perExecutionEnvironmentMaxConcurrency: perEnvironmentMaxConcurrency,
      publishToLatestPublished: true,
    });
  }
}
