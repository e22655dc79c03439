import type { CloudFormationCustomResourceEvent } from 'aws-lambda';

/**
 * Deploy-time custom resource: fetches the user pool's JWKS so the stream function, which has no
 * internet access, gets the keys in its configuration. It answers CloudFormation itself (no framework).
 */
export async function handler(event: CloudFormationCustomResourceEvent): Promise<void> {
  const physicalId = event.RequestType === 'Create' ? `jwks-${event.RequestId}` : event.PhysicalResourceId;
  let response: Record<string, unknown>;
  try {
    const data: Record<string, string> = {};
    if (event.RequestType !== 'Delete') {
      const url = String(event.ResourceProperties.JwksUrl);
      const answer = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      if (!answer.ok) throw new Error(`GET ${url} answered ${answer.status}`);
      const jwks = (await answer.json()) as { keys?: unknown[] };
      if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error('the JWKS has no keys');
      data.Jwks = JSON.stringify({ keys: jwks.keys });
    }
    response = { Status: 'SUCCESS', Data: data };
  } catch (error) {
    response = { Status: 'FAILED', Reason: error instanceof Error ? error.message : String(error) };
  }
  const body = JSON.stringify({
    ...response,
    PhysicalResourceId: physicalId,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
  });
  await fetch(event.ResponseURL, { method: 'PUT', body, headers: { 'content-type': '' } });
}
