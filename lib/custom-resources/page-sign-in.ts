import {
  CognitoIdentityProviderClient,
  DescribeUserPoolClientCommand,
  UpdateUserPoolClientCommand,
  type UpdateUserPoolClientRequest,
  type UserPoolClientType,
} from '@aws-sdk/client-cognito-identity-provider';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import type { ProviderResponse } from './jwks-fetch.ts';

/**
 * Deploy time (CDK custom-resources Provider): opens the app client for the page's managed login (code
 * grant, scopes, the page's origin as callback and sign-out URL) once the CloudFront distribution exists.
 * CloudFormation cannot: the stream function names the client (its token audience), the page's CSP names
 * the function's URL and the distribution names the CSP, so a client that named the distribution would
 * close a cycle. UpdateUserPoolClient replaces every setting, so the client's current ones are read and
 * sent back unchanged beside the OAuth ones; a per-deploy nonce writes them again after any update
 * CloudFormation made to the client. Delete closes the client to OAuth again.
 */

export interface SignInApi {
  describe(userPoolId: string, clientId: string): Promise<UserPoolClientType>;
  update(request: UpdateUserPoolClientRequest): Promise<void>;
}

/** The settings UpdateUserPoolClient takes that CloudFormation wrote and this resource must keep. */
const KEPT = [
  'ClientName',
  'RefreshTokenValidity',
  'AccessTokenValidity',
  'IdTokenValidity',
  'TokenValidityUnits',
  'ReadAttributes',
  'WriteAttributes',
  'ExplicitAuthFlows',
  'PreventUserExistenceErrors',
  'EnableTokenRevocation',
  'EnablePropagateAdditionalUserContextData',
  'AuthSessionValidity',
  'RefreshTokenRotation',
  'AnalyticsConfiguration',
] as const satisfies ReadonlyArray<keyof UserPoolClientType & keyof UpdateUserPoolClientRequest>;

const strings = (value: unknown, name: string): string[] => {
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string'))
    throw new Error(`${name} must be a non-empty list of strings (got ${JSON.stringify(value)})`);
  return value as string[];
};

export function createPageSignInHandler(api: () => SignInApi) {
  return async (event: CloudFormationCustomResourceEvent): Promise<ProviderResponse> => {
    const props = event.ResourceProperties;
    const userPoolId = String(props.UserPoolId ?? '');
    const clientId = String(props.ClientId ?? '');
    if (!userPoolId || !clientId) throw new Error('UserPoolId and ClientId are required');
    const current = await api().describe(userPoolId, clientId);
    const kept = Object.fromEntries(
      KEPT.flatMap((key) => (current[key] === undefined ? [] : [[key, current[key]]])),
    );
    const oauth: Partial<UpdateUserPoolClientRequest> =
      event.RequestType === 'Delete'
        ? { AllowedOAuthFlowsUserPoolClient: false }
        : {
            AllowedOAuthFlowsUserPoolClient: true,
            AllowedOAuthFlows: strings(props.AllowedOAuthFlows, 'AllowedOAuthFlows') as Array<'code'>,
            AllowedOAuthScopes: strings(props.AllowedOAuthScopes, 'AllowedOAuthScopes'),
            CallbackURLs: strings(props.CallbackURLs, 'CallbackURLs'),
            LogoutURLs: strings(props.LogoutURLs, 'LogoutURLs'),
            SupportedIdentityProviders: ['COGNITO'],
          };
    await api().update({ UserPoolId: userPoolId, ClientId: clientId, ...kept, ...oauth });
    return {
      PhysicalResourceId: `page-sign-in-${clientId}`,
      Data: { CallbackURLs: String(oauth.CallbackURLs ?? '') },
    };
  };
}

function cognitoApi(): SignInApi {
  const client = new CognitoIdentityProviderClient({ maxAttempts: 5 });
  return {
    async describe(userPoolId, clientId) {
      const answer = await client.send(
        new DescribeUserPoolClientCommand({ UserPoolId: userPoolId, ClientId: clientId }),
      );
      if (!answer.UserPoolClient) throw new Error(`app client ${clientId} not found`);
      return answer.UserPoolClient;
    },
    async update(request) {
      await client.send(new UpdateUserPoolClientCommand(request));
    },
  };
}

export const handler = createPageSignInHandler(cognitoApi);
