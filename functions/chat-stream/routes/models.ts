import { modelProvider } from '../../contracts/models.ts';
import { RequestRejected } from '../../core/errors.ts';
import { json, type RouteHandler } from '../invocation.ts';

/** OpenAI's model object; Bedrock publishes no creation time, so `created` is 0. */
const modelObject = (id: string) => ({ id, object: 'model', created: 0, owned_by: modelProvider(id) });

/**
 * `GET /v1/models` and `GET /v1/models/{id}`: the models this deployment answers with, its default
 * first (model pickers call these before anything else).
 */
export function modelRoutes(allowed: readonly string[]) {
  const listModels: RouteHandler = async () => json(200, { object: 'list', data: allowed.map(modelObject) });

  /** Model ids hold `:` and `.` (and `/` in ARNs): clients percent-encode them in the path. */
  const retrieveModel: RouteHandler = async (_inv, encodedId) => {
    let id: string;
    try {
      id = decodeURIComponent(encodedId);
    } catch {
      throw new RequestRejected(
        'invalid',
        'invalid_request',
        'The model id is not validly percent-encoded.',
        {
          field: 'model',
        },
      );
    }
    if (!allowed.includes(id)) {
      throw new RequestRejected('not_found', 'model_not_found', 'This deployment has no such model.', {
        field: 'model',
      });
    }
    return json(200, modelObject(id));
  };

  return { listModels, retrieveModel };
}
