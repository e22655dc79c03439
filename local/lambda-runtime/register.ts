import { installAwsLambdaGlobal } from './response-stream.ts';

installAwsLambdaGlobal();
