import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Connect, Plugin } from 'vite';
import type { PageConfig } from '../../functions/contracts/page-config.ts';

const VITE_CONFIG = join(import.meta.dirname, '..', '..', 'web', 'vite.config.ts');

export interface WebServerOptions {
  /** Asked on every load of /config.json, so dev tokens are minted fresh and never expire in an open tab. */
  config: () => Promise<PageConfig>;
  port?: number;
  host?: string;
  /**
   * `source`: Vite's dev server on web/ (modules transformed on request, edits reload the page);
   * `built`: `vite build` into `outDir`, then Vite's preview server on it: what a deployment serves;
   * `prebuilt`: the preview server on a page `buildPage` already wrote to `outDir` (tests build it once).
   */
  mode: 'source' | 'built' | 'prebuilt';
  /** Where `built` writes the page (a directory of its own: tests run at once). */
  outDir?: string;
  /** Response headers for every file (`built` and `prebuilt`), e.g. the Content-Security-Policy a deployment sends. */
  headers?: Record<string, string>;
}

export interface WebServer {
  url: string;
  /** The page's origin, for the Function URL's CORS. */
  origin: string;
  close(): Promise<void>;
}

/** Serves the runtime config at /config.json, as the deployed bucket does. */
function runtimeConfig(config: WebServerOptions['config']): Plugin {
  const handle: Connect.NextHandleFunction = (_req, res, next) => {
    config().then((body) => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'no-store');
      res.end(JSON.stringify(body));
    }, next);
  };
  return {
    name: 'chat-runtime-config',
    configureServer: (server) => void server.middlewares.use('/config.json', handle),
    configurePreviewServer: (server) => void server.middlewares.use('/config.json', handle),
  };
}

/** The chat page on its own port: another origin than the Function URL, so CORS is exercised for real. */
export async function startWebServer(options: WebServerOptions): Promise<WebServer> {
  const { build, createServer, preview } = await import('vite');
  const host = options.host ?? '127.0.0.1';
  const common = {
    configFile: VITE_CONFIG,
    plugins: [runtimeConfig(options.config)],
    logLevel: 'warn' as const,
    clearScreen: false,
  };
  if (options.mode === 'source') {
    const server = await createServer({
      ...common,
      server: { port: options.port ?? 0, host, strictPort: true },
    });
    await server.listen();
    const address = server.httpServer?.address();
    if (!address || typeof address === 'string') throw new Error('the page server is not listening');
    const { port } = address;
    const origin = `http://${host}:${port}`;
    return { url: `${origin}/`, origin, close: () => server.close() };
  }
  const outDir = options.outDir ?? join(import.meta.dirname, '..', '..', 'web', 'dist');
  if (options.mode === 'built') await build({ ...common, build: { outDir, emptyOutDir: true } });
  const server = await preview({
    ...common,
    build: { outDir },
    preview: { port: options.port ?? 0, host, strictPort: true, headers: options.headers ?? {} },
  });
  const { port } = server.httpServer.address() as AddressInfo;
  const origin = `http://${host}:${port}`;
  return { url: `${origin}/`, origin, close: () => server.close() };
}

/** `vite build` of the page into `outDir`, for servers started later in `prebuilt` mode. */
export async function buildPage(outDir: string): Promise<void> {
  const { build } = await import('vite');
  await build({ configFile: VITE_CONFIG, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
}
