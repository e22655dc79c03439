import { RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Provider } from 'aws-cdk-lib/custom-resources';
import type { Construct } from 'constructs';
import { nagResourceName } from './nag.ts';

/**
 * CDK's custom-resources Provider around a deploy-time handler: the framework answers CloudFormation
 * (the presigned PUT, its retries and timeouts), so the handler only returns data or throws.
 */
export function deployTimeProvider(
  scope: Construct,
  id: string,
  onEventHandler: IFunction,
  logRetention: RetentionDays,
): Provider {
  const provider = new Provider(scope, id, {
    onEventHandler,
    logGroup: new LogGroup(scope, `${id}Logs`, {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    }),
  });
  Validations.of(provider).acknowledge(
    {
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      reason:
        "CDK's Provider framework function writes its logs with it, to its own log group with a retention.",
    },
    {
      id: `AwsSolutions-IAM5[Resource::${nagResourceName(Stack.of(scope), onEventHandler.functionArn)}:*]`,
      reason: 'The Provider framework invokes its one handler function, any version or alias of it.',
    },
  );
  return provider;
}
