import { usage } from './account-routes.ts';
import {
  deleteSession,
  eraseUser,
  getSession,
  listMessages,
  listSessions,
  renameSession,
} from './conversation-routes.ts';
import { HttpError } from './http-edge.ts';
import { listModels, retrieveModel } from './model-routes.ts';
import {
  aiSdkTurn,
  type Invocation,
  nativeTurn,
  openAiTurn,
  type RouteResponse,
  resumeTurn,
  stopTurn,
} from './turn-routes.ts';

type RouteHandler = (inv: Invocation, id: string) => Promise<RouteResponse>;

interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: RegExp;
  handle: RouteHandler;
}

const ID = '([A-Za-z0-9_-]{1,128})';
const withId = (suffix = '') => new RegExp(`^/sessions/${ID}${suffix}$`);

/** Every route the stream function answers on its one Function URL. */
const ROUTES: Route[] = [
  { method: 'POST', path: /^\/$/, handle: nativeTurn },
  { method: 'POST', path: /^\/api\/v1\/chat\/message\/stream$/, handle: nativeTurn },
  { method: 'POST', path: /^\/api\/chat$/, handle: aiSdkTurn },
  { method: 'POST', path: /^\/v1\/chat\/completions$/, handle: openAiTurn },
  { method: 'GET', path: /^\/v1\/models$/, handle: listModels },
  { method: 'GET', path: /^\/v1\/models\/([^?#]{1,2048})$/, handle: retrieveModel },
  {
    method: 'GET',
    path: new RegExp(`^/api/chat/${ID}/stream$`),
    handle: (inv, id) => resumeTurn(inv, id, 'ai-sdk'),
  },
  { method: 'GET', path: withId('/stream'), handle: (inv, id) => resumeTurn(inv, id, 'native') },
  { method: 'POST', path: new RegExp(`^/api/chat/${ID}/stop$`), handle: stopTurn },
  { method: 'POST', path: withId('/stop'), handle: stopTurn },
  { method: 'GET', path: /^\/sessions$/, handle: listSessions },
  { method: 'GET', path: withId(), handle: getSession },
  { method: 'PATCH', path: withId(), handle: renameSession },
  { method: 'DELETE', path: withId(), handle: deleteSession },
  { method: 'GET', path: withId('/messages'), handle: listMessages },
  { method: 'GET', path: /^\/me\/usage$/, handle: usage },
  { method: 'DELETE', path: /^\/me$/, handle: eraseUser },
];

export interface MatchedRoute {
  handle: RouteHandler;
  /** The path's id (a session id), or '' when the route has none. */
  id: string;
}

/** A small table instead of a router library: fifteen routes do not pay for a dependency in the stream bundle. */
export function matchRoute(method: string, rawPath: string): MatchedRoute {
  const path = rawPath.length > 1 ? rawPath.replace(/\/+$/, '') : rawPath;
  const onPath = ROUTES.filter((route) => route.path.test(path));
  if (onPath.length === 0)
    throw new HttpError(404, 'not_found', 'No such route. See the README for the routes.');
  const route = onPath.find((r) => r.method === method);
  if (!route) {
    const allow = [...new Set(onPath.map((r) => r.method))].join(', ');
    throw new HttpError(405, 'method_not_allowed', `Use ${allow}.`, { headers: { allow } });
  }
  return { handle: route.handle, id: route.path.exec(path)?.[1] ?? '' };
}
