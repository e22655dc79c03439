import { LambdaClient, UpdateFunctionUrlConfigCommand } from '@aws-sdk/client-lambda';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import type { ProviderResponse } from './jwks-fetch.ts';

/**
 * Deploy time (CDK custom-resources Provider): writes the Function URL's CORS once the CloudFront
 * distribution that hosts the chat page exists. CloudFormation cannot: the page's CSP names the Function
 * URL (the distribution depends on the URL) and the URL's allowed origin names the distribution, a cycle.
 * A per-deploy nonce makes every deploy write it again, after any change CloudFormation made to the URL.
 * Delete writes nothing: the origin it added belongs to the distribution deleted with it.
 */

export interface FunctionUrlCors {
  AllowOrigins: string[];
  AllowMethods: string[];
  AllowHeaders: string[];
  ExposeHeaders: string[];
  MaxAge: number;
}

/** The one Lambda API call, behind a port so tests need no AWS. */
export interface FunctionUrlApi {
  setCors(functionName: string, cors: FunctionUrlCors): Promise<void>;
}

const strings = (value: unknown, name: string): string[] => {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))
    throw new Error(`Cors.${name} must be a list of strings (got ${JSON.stringify(value)})`);
  return value as string[];
};

/** CloudFormation hands custom resources every scalar as a string: MaxAge "3600" becomes 3600 again. */
export function corsFromProperties(raw: unknown): FunctionUrlCors {
  const cors = (raw ?? {}) as Record<string, unknown>;
  const maxAge = Number(cors.MaxAge);
  if (!Number.isInteger(maxAge) || maxAge < 0 || maxAge > 86_400)
    throw new Error(`Cors.MaxAge must be whole seconds from 0 to 86400 (got ${JSON.stringify(cors.MaxAge)})`);
  const origins = strings(cors.AllowOrigins, 'AllowOrigins');
  if (origins.length === 0) throw new Error('Cors.AllowOrigins is empty');
  return {
    AllowOrigins: origins,
    AllowMethods: strings(cors.AllowMethods, 'AllowMethods'),
    AllowHeaders: strings(cors.AllowHeaders, 'AllowHeaders'),
    ExposeHeaders: strings(cors.ExposeHeaders, 'ExposeHeaders'),
    MaxAge: maxAge,
  };
}

export function createFunctionUrlCorsHandler(api: () => FunctionUrlApi) {
  return async (event: CloudFormationCustomResourceEvent): Promise<ProviderResponse> => {
    if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId };
    const functionName = String(event.ResourceProperties.FunctionName ?? '');
    if (!functionName) throw new Error('FunctionName is missing');
    const cors = corsFromProperties(event.ResourceProperties.Cors);
    await api().setCors(functionName, cors);
    // A stable id: new origins are an update of the same resource, never a replacement.
    return { PhysicalResourceId: 'function-url-cors', Data: { AllowOrigins: cors.AllowOrigins.join(',') } };
  };
}

/** The Lambda client, bundled at the version the project pins. */
function lambdaApi(): FunctionUrlApi {
  const client = new LambdaClient({ maxAttempts: 5 });
  return {
    async setCors(functionName, cors) {
      await client.send(new UpdateFunctionUrlConfigCommand({ FunctionName: functionName, Cors: cors }));
    },
  };
}

export const handler = createFunctionUrlCorsHandler(lambdaApi);
