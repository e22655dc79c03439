import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ChatStack } from '../lib/chat-stack.ts';
import { readConfig } from '../lib/config.ts';

const app = new App();
// Environment-agnostic on purpose: synth needs no credentials; the deploy account and region apply.
new ChatStack(app, 'StreamingChat', {
  config: readConfig(app.node),
  description:
    'Serverless streaming chat backend (Lambda response streaming, ElastiCache, DynamoDB, SQS, Bedrock)',
});
// cdk-nag runs on every synth: an unacknowledged finding fails it.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
