import { HttpError } from './http-edge.ts';

/** Every route the stream function answers on its one Function URL. */
type RouteName =
  | 'native-turn'
  | 'ai-sdk-turn'
  | 'openai-turn'
  | 'ai-sdk-resume'
  | 'native-resume'
  | 'stop'
  | 'list-sessions'
  | 'get-session'
  | 'rename-session'
  | 'delete-session'
  | 'list-messages'
  | 'usage'
  | 'erase-me';

interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: RegExp;
  name: RouteName;
}

const ID = '([A-Za-z0-9_-]{1,128})';

const ROUTES: Route[] = [
  { method: 'POST', path: /^\/$/, name: 'native-turn' },
  { method: 'POST', path: /^\/api\/v1\/chat\/message\/stream$/, name: 'native-turn' },
  { method: 'POST', path: /^\/api\/chat$/, name: 'ai-sdk-turn' },
  { method: 'POST', path: /^\/v1\/chat\/completions$/, name: 'openai-turn' },
  { method: 'GET', path: new RegExp(`^/api/chat/${ID}/stream$`), name: 'ai-sdk-resume' },
  { method: 'GET', path: new RegExp(`^/sessions/${ID}/stream$`), name: 'native-resume' },
  { method: 'POST', path: new RegExp(`^/api/chat/${ID}/stop$`), name: 'stop' },
  { method: 'POST', path: new RegExp(`^/sessions/${ID}/stop$`), name: 'stop' },
  { method: 'GET', path: /^\/sessions$/, name: 'list-sessions' },
  { method: 'GET', path: new RegExp(`^/sessions/${ID}$`), name: 'get-session' },
  { method: 'PATCH', path: new RegExp(`^/sessions/${ID}$`), name: 'rename-session' },
  { method: 'DELETE', path: new RegExp(`^/sessions/${ID}$`), name: 'delete-session' },
  { method: 'GET', path: new RegExp(`^/sessions/${ID}/messages$`), name: 'list-messages' },
  { method: 'GET', path: /^\/me\/usage$/, name: 'usage' },
  { method: 'DELETE', path: /^\/me$/, name: 'erase-me' },
];

export interface MatchedRoute {
  name: RouteName;
  /** The path's id (a session id), when the route has one. */
  id: string | undefined;
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
  return { name: route.name, id: route.path.exec(path)?.[1] };
}
