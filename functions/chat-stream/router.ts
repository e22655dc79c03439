import { API_PATHS } from '../contracts/api.ts';
import { RequestRejected } from '../core/errors.ts';
import { OPAQUE_ID } from '../core/messages.ts';
import type { RouteHandler } from './invocation.ts';
import type { accountRoutes } from './routes/account.ts';
import type { conversationRoutes } from './routes/conversations.ts';
import type { modelRoutes } from './routes/models.ts';
import type { turnRoutes } from './routes/turns.ts';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Route {
  method: Method;
  path: RegExp;
  handle: RouteHandler;
}

/** The route groups, each built once in the composition root with the dependencies it needs. */
export interface RouteGroups {
  turns: ReturnType<typeof turnRoutes>;
  conversations: ReturnType<typeof conversationRoutes>;
  account: ReturnType<typeof accountRoutes>;
  models: ReturnType<typeof modelRoutes>;
}

/** A path of the API table as a pattern; `{id}` captures an opaque id. */
const pattern = (path: string) =>
  new RegExp(
    `^${path.replace(/\{(id|messageId)\}/g, `(${OPAQUE_ID.source.slice(1, -1)})`).replaceAll('/', '\\/')}$`,
  );

/** Every route the stream function answers on its one Function URL. */
function routeTable({ turns, conversations, account, models }: RouteGroups): Route[] {
  const api = (method: Method, path: string, handle: RouteHandler): Route => ({
    method,
    path: pattern(path),
    handle,
  });
  return [
    api('POST', API_PATHS.nativeTurn, turns.nativeTurn),
    api('POST', API_PATHS.nativeTurnLong, turns.nativeTurn),
    api('POST', API_PATHS.aiSdkTurn, turns.aiSdkTurn),
    api('POST', API_PATHS.openAiTurn, turns.openAiTurn),
    api('GET', API_PATHS.aiSdkResume, turns.resumeAiSdk),
    api('GET', API_PATHS.sessionResume, turns.resumeNative),
    api('POST', API_PATHS.aiSdkStop, turns.stop),
    api('POST', API_PATHS.sessionStop, turns.stop),
    api('GET', API_PATHS.sessions, conversations.listSessions),
    api('GET', API_PATHS.session, conversations.getSession),
    api('PATCH', API_PATHS.session, conversations.renameSession),
    api('DELETE', API_PATHS.session, conversations.deleteSession),
    api('GET', API_PATHS.sessionMessages, conversations.listMessages),
    api('PUT', API_PATHS.messageFeedback, conversations.putFeedback),
    api('DELETE', API_PATHS.messageFeedback, conversations.deleteFeedback),
    api('GET', API_PATHS.usage, account.usage),
    api('DELETE', API_PATHS.me, conversations.eraseUser),
    api('GET', API_PATHS.models, models.listModels),
    // A model id is not an opaque id: it holds `.`, `:` and, percent-encoded, `/`.
    { method: 'GET', path: /^\/v1\/models\/([^/?#]{1,2048})$/, handle: models.retrieveModel },
  ];
}

export interface MatchedRoute {
  handle: RouteHandler;
  /** The path's id (a session id; `<session id>/<message id>` on a message's route), or '' when none. */
  id: string;
}

/** The body shape of a refusal: OpenAI's under `/v1/` (the OpenAI-compatible route), the API's elsewhere. */
export const errorsForPath = (path: string): 'api' | 'openai' => (path.startsWith('/v1/') ? 'openai' : 'api');

/** A small table instead of a router library: fifteen routes do not pay for a dependency in the stream bundle. */
export function createRouter(groups: RouteGroups) {
  const routes = routeTable(groups);
  return function matchRoute(method: string, rawPath: string): MatchedRoute {
    const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
    const onPath = routes.filter((route) => route.path.test(path));
    if (onPath.length === 0) {
      throw new RequestRejected('not_found', 'not_found', 'No such route. See the README for the routes.');
    }
    const route = onPath.find((r) => r.method === method);
    if (!route) {
      const allow = [...new Set(onPath.map((r) => r.method))].join(', ');
      throw new RequestRejected('method_not_allowed', 'method_not_allowed', `Use ${allow}.`, { allow });
    }
    // Opaque ids hold no `/`, so a message's route joins its two ids without ambiguity.
    return { handle: route.handle, id: route.path.exec(path)?.slice(1).join('/') ?? '' };
  };
}
