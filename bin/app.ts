import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ChatStack } from '../lib/chat-stack.ts';
import { type ChatStackConfig, ConfigError, readConfig, stageNames } from '../lib/config.ts';

const app = new App();
let config: ChatStackConfig;
try {
  config = readConfig(app.node);
} catch (error) {
  // A context mistake is the operator's, not a crash: the message alone says what to fix.
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(1);
}
// Environment-agnostic unless chat:region pins the Region (then the model's geography is checked
// against it). Never the account: an explicit account plus a VPC makes synth look AZs up in AWS.
new ChatStack(app, stageNames(config.stage).stackName, {
  config,
  ...(config.region ? { env: { region: config.region } } : {}),
  description:
    'Serverless streaming chat backend (Lambda response streaming, ElastiCache, DynamoDB, SQS, Bedrock)',
});
// cdk-nag runs on every synth: an unacknowledged finding fails it.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
