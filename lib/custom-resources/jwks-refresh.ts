import {
  GetFunctionConfigurationCommand,
  LambdaClient,
  PublishVersionCommand,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import { type FetchJwksOptions, fetchJwks, type Jwks } from './jwks-fetch.ts';

/**
 * Scheduled (EventBridge) and on demand: fetches the user pool's JWKS and, when its keys differ from
 * the stream function's AUTH_JWKS, writes the new keys into that function's environment, so a Cognito
 * key rotation does not wait for the next deploy. Every other variable is kept; the write is
 * conditioned on the revision it read, so a concurrent deploy is never overwritten with stale values.
 */

export interface FunctionEnvironment {
  variables: Record<string, string>;
  revisionId?: string;
}

/** The Lambda API calls the refresh makes, behind a port so tests need no AWS. */
export interface FunctionConfigApi {
  read(functionName: string): Promise<FunctionEnvironment>;
  write(functionName: string, variables: Record<string, string>, revisionId?: string): Promise<void>;
  /**
   * Lambda Managed Instances run $LATEST.PUBLISHED, not $LATEST: once the update has finished, publish
   * it there, or the new keys would wait for the next deploy.
   */
  publish(functionName: string): Promise<void>;
}

export interface RefreshResult {
  changed: boolean;
  kids: string[];
}

export const JWKS_VARIABLE = 'AUTH_JWKS';

const canonical = (jwks: Jwks | undefined) =>
  JSON.stringify(
    (jwks?.keys ?? [])
      .map((key) => Object.fromEntries(Object.entries(key).sort(([a], [b]) => a.localeCompare(b))))
      .sort((a, b) => String(a.kid).localeCompare(String(b.kid))),
  );

function parse(text: string | undefined): Jwks | undefined {
  try {
    return text ? (JSON.parse(text) as Jwks) : undefined;
  } catch {
    return undefined;
  }
}

export function createJwksRefreshHandler(deps: {
  api: () => FunctionConfigApi;
  jwksUrl: string;
  functionName: string;
  /** The target runs on Lambda Managed Instances: a written configuration must also be published. */
  publishToLatestPublished?: boolean;
  fetchOptions?: FetchJwksOptions;
  log?: (line: string) => void;
}) {
  const log = deps.log ?? console.log;
  return async (): Promise<RefreshResult> => {
    const fresh = await fetchJwks(deps.jwksUrl, deps.fetchOptions);
    const kids = fresh.keys.map((k) => k.kid);
    const api = deps.api();
    const current = await api.read(deps.functionName);
    if (canonical(parse(current.variables[JWKS_VARIABLE])) === canonical(fresh))
      return { changed: false, kids };
    await api.write(
      deps.functionName,
      { ...current.variables, [JWKS_VARIABLE]: JSON.stringify({ keys: fresh.keys }) },
      current.revisionId,
    );
    if (deps.publishToLatestPublished) await api.publish(deps.functionName);
    log(JSON.stringify({ message: 'JWKS refreshed', functionName: deps.functionName, kids }));
    return { changed: true, kids };
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The Lambda client bundled at the version the project pins, not the runtime's copy: a runtime SDK too
 * old to know `PublishTo` would publish a numbered version that Managed Instances never run.
 */
function lambdaApi(): FunctionConfigApi {
  const client = new LambdaClient({ maxAttempts: 3 });
  return {
    async read(functionName) {
      const answer = await client.send(new GetFunctionConfigurationCommand({ FunctionName: functionName }));
      const environment = answer.Environment as { Variables?: Record<string, string> } | undefined;
      return { variables: environment?.Variables ?? {}, revisionId: answer.RevisionId as string | undefined };
    },
    async write(functionName, variables, revisionId) {
      await client.send(
        new UpdateFunctionConfigurationCommand({
          FunctionName: functionName,
          Environment: { Variables: variables },
          RevisionId: revisionId,
        }),
      );
    },
    async publish(functionName) {
      // A publish while the update is still in progress is refused (ResourceConflictException).
      for (let attempt = 0; attempt < 60; attempt++) {
        const state = await client.send(new GetFunctionConfigurationCommand({ FunctionName: functionName }));
        if (state.LastUpdateStatus === 'Failed')
          throw new Error(`the update of ${functionName} failed: ${String(state.LastUpdateStatusReason)}`);
        if (state.LastUpdateStatus !== 'InProgress') break;
        await sleep(1000);
      }
      await client.send(
        new PublishVersionCommand({ FunctionName: functionName, PublishTo: 'LATEST_PUBLISHED' }),
      );
    },
  };
}

export const handler = createJwksRefreshHandler({
  api: lambdaApi,
  jwksUrl: process.env.JWKS_URL ?? '',
  functionName: process.env.TARGET_FUNCTION_NAME ?? '',
  publishToLatestPublished: process.env.PUBLISH_TO_LATEST_PUBLISHED === 'true',
});
