import { modelProvider } from '../contracts/models.ts';
import { RequestRejected } from '../core/errors.ts';
import type { Invocation, RouteResponse } from './turn-routes.ts';

/** OpenAI's model object; Bedrock publishes no creation time, so `created` is 0. */
const modelObject = (id: string) => ({ id, object: 'model', created: 0, owned_by: modelProvider(id) });

const json = (body: unknown): RouteResponse => ({
  statusCode: 200,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/** `GET /v1/models`: the models this deployment answers with, its default first. */
export async function listModels(inv: Invocation): Promise<RouteResponse> {
  return json({ object: 'list', data: inv.runtime.modelPolicy.allowed.map(modelObject) });
}

/** `GET /v1/models/{id}`: one allowed model (ids hold `:`, `.` and, for ARNs, `/`; clients percent-encode them). */
export async function retrieveModel(inv: Invocation, encodedId: string): Promise<RouteResponse> {
  let id: string;
  try {
    id = decodeURIComponent(encodedId);
  } catch {
    throw new RequestRejected('invalid', 'invalid_request', 'The model id is not validly percent-encoded.', {
      field: 'model',
    });
  }
  if (!inv.runtime.modelPolicy.allowed.includes(id)) {
    throw new RequestRejected('not_found', 'model_not_found', 'This deployment has no such model.', {
      field: 'model',
    });
  }
  return json(modelObject(id));
}
