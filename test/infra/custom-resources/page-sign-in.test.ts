import type {
  UpdateUserPoolClientRequest,
  UserPoolClientType,
} from '@aws-sdk/client-cognito-identity-provider';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { createPageSignInHandler } from '../../../lib/custom-resources/page-sign-in.ts';

const PAGE = 'https://d111111abcdef8.cloudfront.net/';

const event = (requestType: 'Create' | 'Update' | 'Delete', extra: Record<string, unknown> = {}) =>
  ({
    RequestType: requestType,
    PhysicalResourceId: 'page-sign-in-client1',
    ResourceProperties: {
      ServiceToken: 'arn',
      UserPoolId: 'us-east-1_pool',
      ClientId: 'client1',
      AllowedOAuthFlows: ['code'],
      AllowedOAuthScopes: ['openid', 'email', 'profile'],
      CallbackURLs: [PAGE],
      LogoutURLs: [PAGE],
      DeployNonce: '2026-12-04T15:00:00.000Z',
      ...extra,
    },
  }) as unknown as CloudFormationCustomResourceEvent;

// The client as CloudFormation left it: what UpdateUserPoolClient would reset if not sent back.
const CURRENT: UserPoolClientType = {
  UserPoolId: 'us-east-1_pool',
  ClientId: 'client1',
  ClientName: 'WebClient',
  RefreshTokenValidity: 720,
  AccessTokenValidity: 60,
  IdTokenValidity: 60,
  TokenValidityUnits: { AccessToken: 'minutes', IdToken: 'minutes', RefreshToken: 'minutes' },
  ExplicitAuthFlows: ['ALLOW_USER_SRP_AUTH', 'ALLOW_ADMIN_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
  PreventUserExistenceErrors: 'ENABLED',
  EnableTokenRevocation: true,
  CreationDate: new Date(0),
};

function cognito() {
  const updates: UpdateUserPoolClientRequest[] = [];
  const handler = createPageSignInHandler(() => ({
    describe: async () => CURRENT,
    update: async (request) => {
      updates.push(request);
    },
  }));
  return { handler, updates };
}

describe('page sign-in custom resource', () => {
  it('opens the code grant for the page origin and sends every other setting back unchanged', async () => {
    const { handler, updates } = cognito();
    await handler(event('Create'));
    expect(updates).toEqual([
      {
        UserPoolId: 'us-east-1_pool',
        ClientId: 'client1',
        ClientName: 'WebClient',
        RefreshTokenValidity: 720,
        AccessTokenValidity: 60,
        IdTokenValidity: 60,
        TokenValidityUnits: CURRENT.TokenValidityUnits,
        ExplicitAuthFlows: CURRENT.ExplicitAuthFlows,
        PreventUserExistenceErrors: 'ENABLED',
        EnableTokenRevocation: true,
        AllowedOAuthFlowsUserPoolClient: true,
        AllowedOAuthFlows: ['code'],
        AllowedOAuthScopes: ['openid', 'email', 'profile'],
        CallbackURLs: [PAGE],
        LogoutURLs: [PAGE],
        SupportedIdentityProviders: ['COGNITO'],
      },
    ]);
    // Read-only fields of the description never go into the update.
    expect(updates[0]).not.toHaveProperty('CreationDate');
  });

  it('closes the client to OAuth again on delete, keeping its settings', async () => {
    const { handler, updates } = cognito();
    await handler(event('Delete'));
    expect(updates[0]).toMatchObject({ AllowedOAuthFlowsUserPoolClient: false, RefreshTokenValidity: 720 });
    expect(updates[0]?.CallbackURLs).toBeUndefined();
  });

  it('refuses settings it cannot write (no callback URL)', async () => {
    const { handler, updates } = cognito();
    await expect(handler(event('Update', { CallbackURLs: [] }))).rejects.toThrow(
      'CallbackURLs must be a non-empty list of strings (got [])',
    );
    expect(updates).toEqual([]);
  });
});
