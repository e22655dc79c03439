import { App } from 'aws-cdk-lib';
import { ChatStack } from '../lib/chat-stack.ts';
import { readConfig } from '../lib/config.ts';

const app = new App();
// Environment-agnostic on purpose: synth needs no credentials; the deploy account and region apply.
new ChatStack(app, 'StreamingChat', {
  config: readConfig(app.node),
  description:
    'Serverless streaming chat backend (Lambda response streaming, ElastiCache, DynamoDB, SQS, Bedrock)',
});
app.synth();
