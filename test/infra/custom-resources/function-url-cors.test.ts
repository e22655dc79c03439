import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { CORS_SETTINGS } from '../../../functions/contracts/cors.ts';
import {
  corsFromProperties,
  createFunctionUrlCorsHandler,
  type FunctionUrlCors,
} from '../../../lib/custom-resources/function-url-cors.ts';

// What CloudFormation hands the handler: every scalar a string (MaxAge "3600").
const PROPERTIES = {
  ServiceToken: 'arn',
  FunctionName: 'StreamingChat-ChatStream',
  DeployNonce: '2026-11-27T12:00:00.000Z',
  Cors: {
    AllowOrigins: ['https://d111111abcdef8.cloudfront.net'],
    AllowMethods: [...CORS_SETTINGS.allowMethods],
    AllowHeaders: [...CORS_SETTINGS.allowHeaders],
    ExposeHeaders: [...CORS_SETTINGS.exposeHeaders],
    MaxAge: String(CORS_SETTINGS.maxAgeSeconds),
  },
};

const event = (requestType: 'Create' | 'Update' | 'Delete', properties: object = PROPERTIES) =>
  ({
    RequestType: requestType,
    RequestId: 'req-1',
    StackId: 'stack',
    LogicalResourceId: 'FunctionUrlCorsSettings',
    ResourceType: 'Custom::FunctionUrlCors',
    ServiceToken: 'arn',
    ResponseURL: 'https://cloudformation.invalid/unused',
    PhysicalResourceId: 'function-url-cors',
    ResourceProperties: properties,
    OldResourceProperties: properties,
  }) as unknown as CloudFormationCustomResourceEvent;

function setup() {
  const calls: Array<{ functionName: string; cors: FunctionUrlCors }> = [];
  const handler = createFunctionUrlCorsHandler(() => ({
    setCors: async (functionName, cors) => {
      calls.push({ functionName, cors });
    },
  }));
  return { handler, calls };
}

describe('Function URL CORS custom resource (Provider framework onEvent)', () => {
  it('writes the CORS settings on create and on every update, MaxAge back to a number', async () => {
    for (const type of ['Create', 'Update'] as const) {
      const { handler, calls } = setup();
      expect(await handler(event(type))).toEqual({
        PhysicalResourceId: 'function-url-cors',
        Data: { AllowOrigins: 'https://d111111abcdef8.cloudfront.net' },
      });
      expect(calls).toEqual([
        {
          functionName: 'StreamingChat-ChatStream',
          cors: { ...PROPERTIES.Cors, MaxAge: CORS_SETTINGS.maxAgeSeconds },
        },
      ]);
    }
  });

  it('writes nothing on delete: the origin it added goes with the distribution', async () => {
    const { handler, calls } = setup();
    expect(await handler(event('Delete'))).toEqual({ PhysicalResourceId: 'function-url-cors' });
    expect(calls).toEqual([]);
  });

  it('fails the deploy on malformed settings instead of writing them', async () => {
    const { handler, calls } = setup();
    await expect(handler(event('Create', { ...PROPERTIES, FunctionName: '' }))).rejects.toThrow(
      'FunctionName is missing',
    );
    expect(() => corsFromProperties({ ...PROPERTIES.Cors, MaxAge: 'an hour' })).toThrow(/MaxAge/);
    expect(() => corsFromProperties({ ...PROPERTIES.Cors, AllowOrigins: [] })).toThrow(
      /AllowOrigins is empty/,
    );
    expect(() => corsFromProperties({ ...PROPERTIES.Cors, AllowHeaders: 'authorization' })).toThrow(
      /AllowHeaders must be a list/,
    );
    expect(calls).toEqual([]);
  });
});
