import type { APIGatewayProxyEvent, LambdaFunctionURLEvent } from 'aws-lambda';
import { CORS_SETTINGS } from '../contracts/cors.ts';

/** What reaches the function: a Function URL's event (payload 2.0) or API Gateway REST proxy's (payload 1.0). */
export type FrontDoorEvent = LambdaFunctionURLEvent | APIGatewayProxyEvent;

/** One request as the routes read it, the same whichever front door delivered it. */
export interface HttpRequest {
  method: string;
  /** The route's path: a REST API's `event.path` holds no stage on its execute-api URL. */
  path: string;
  /** Lower-case names; a repeated header's values joined with `,` (as the Function URL joins them). */
  headers: Record<string, string | undefined>;
  /** Absent without a query string; a repeated parameter's values joined with `,`. */
  queryStringParameters?: Record<string, string | undefined>;
  body?: string;
  isBase64Encoded: boolean;
}

/** Joins each name's values with `,`; a name given in several cases is one header (HTTP names are case-insensitive). */
function joined(values: Record<string, string[] | undefined>, lowerCase: boolean): Record<string, string> {
  // No prototype: a header named `__proto__` or `constructor` is a header like any other.
  const out: Record<string, string> = Object.create(null);
  for (const [rawName, list] of Object.entries(values)) {
    if (!list) continue;
    const name = lowerCase ? rawName.toLowerCase() : rawName;
    const value = list.join(',');
    out[name] = Object.hasOwn(out, name) ? `${out[name]},${value}` : value;
  }
  return out;
}

const asLists = (single: Record<string, string | undefined> | null | undefined) =>
  Object.fromEntries(Object.entries(single ?? {}).map(([k, v]) => [k, v === undefined ? undefined : [v]]));

export function httpRequestOf(event: FrontDoorEvent): HttpRequest {
  if (!('httpMethod' in event)) {
    const { method, path } = event.requestContext.http;
    return {
      method,
      path,
      headers: event.headers ?? {},
      ...(event.queryStringParameters ? { queryStringParameters: event.queryStringParameters } : {}),
      ...(event.body !== undefined ? { body: event.body } : {}),
      isBase64Encoded: event.isBase64Encoded,
    };
  }
  // The multi-value maps hold every value; the single-value maps keep only the last of a repeated name.
  const query = joined(event.multiValueQueryStringParameters ?? asLists(event.queryStringParameters), false);
  return {
    method: event.httpMethod,
    path: event.path,
    headers: joined(event.multiValueHeaders ?? asLists(event.headers), true),
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    ...(event.body !== null ? { body: event.body } : {}),
    isBase64Encoded: event.isBase64Encoded,
  };
}

/**
 * CORS headers for an actual response behind API Gateway, which answers preflights but cannot add headers
 * to a streamed proxy response. Empty when `allowedOrigins` is (the Function URL adds its own).
 */
export function corsHeadersFor(origin: string | undefined, allowedOrigins: readonly string[]) {
  if (allowedOrigins.length === 0) return {};
  const headers: Record<string, string> = { vary: 'Origin' };
  if (origin && allowedOrigins.includes(origin)) {
    headers['access-control-allow-origin'] = origin;
    headers['access-control-expose-headers'] = CORS_SETTINGS.exposeHeaders.join(', ');
  }
  return headers;
}
