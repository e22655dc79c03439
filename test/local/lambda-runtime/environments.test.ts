import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { type FunctionUrlServer, startFunctionUrl } from '../../../local/lambda-runtime/function-url.ts';
import { installAwsLambdaGlobal } from '../../../local/lambda-runtime/response-stream.ts';
import { readRest } from '../../support/streams.ts';

// The Function URL emulator with execution environments of their own (worker threads), as Lambda runs them.
const fixture = join(import.meta.dirname, 'fixtures', 'counting-handler.ts');
const module = { path: fixture, exportName: 'handler' };
let server: FunctionUrlServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Seen {
  environment: number;
  instance: string;
  invocation: number;
  concurrent: number;
  globalOwner: string | null;
}

async function call(url: string) {
  const response = await fetch(url, { method: 'POST' });
  const text = await response.text();
  return { status: response.status, text, first: JSON.parse(text.split('\n')[0] ?? '{}') as Seen };
}

describe('Function URL emulator with isolated execution environments', () => {
  it('runs concurrent requests in separate environments (own thread, module instance, state and globals), then reuses a warm one with its state', async () => {
    server = await startFunctionUrl({ module, maxEnvironments: 4 });
    const [a, b] = await Promise.all([call(`${server.url}/?wait=200`), call(`${server.url}/?wait=200`)]);
    expect(a.text.endsWith('done\n')).toBe(true);
    // Not this thread, and not each other's.
    expect([a.first.environment, b.first.environment]).not.toContain(threadId);
    expect(a.first.environment).not.toBe(b.first.environment);
    // Each ran its own init (a module instance of its own) and counts only its own invocations...
    expect(a.first.instance).not.toBe(b.first.instance);
    expect([a.first.invocation, b.first.invocation]).toEqual([1, 1]);
    expect([a.first.concurrent, b.first.concurrent]).toEqual([1, 1]);
    // ...and neither saw the global the other set.
    expect([a.first.globalOwner, b.first.globalOwner]).toEqual([null, null]);

    // A later request finds a warm environment: same module instance, its count and its global kept.
    const c = await call(server.url);
    expect([a.first.environment, b.first.environment]).toContain(c.first.environment);
    expect([a.first.instance, b.first.instance]).toContain(c.first.instance);
    expect(c.first.invocation).toBe(2);
    expect(c.first.globalOwner).toBe(c.first.instance);
  });

  it('the same checks see one shared instance when the handler runs in this process (shared mode)', async () => {
    installAwsLambdaGlobal();
    const { handler } = (await import(fixture)) as { handler: never };
    server = await startFunctionUrl({ handler });
    const [a, b] = await Promise.all([call(`${server.url}/?wait=200`), call(`${server.url}/?wait=200`)]);
    expect(a.first.environment).toBe(threadId);
    expect(a.first.instance).toBe(b.first.instance);
    expect([a.first.invocation, b.first.invocation].sort()).toEqual([1, 2]);
    expect(Math.max(a.first.concurrent, b.first.concurrent)).toBe(2);
  });

  it('queues requests beyond the environment limit: one environment serves them one after the other', async () => {
    server = await startFunctionUrl({ module, maxEnvironments: 1 });
    const [a, b] = await Promise.all([call(`${server.url}/?wait=100`), call(`${server.url}/?wait=100`)]);
    expect(a.first.environment).toBe(b.first.environment);
    expect(a.first.instance).toBe(b.first.instance);
    expect([a.first.invocation, b.first.invocation].sort()).toEqual([1, 2]);
    // The second started only after the first had finished: never two at once in one environment.
    expect([a.first.concurrent, b.first.concurrent]).toEqual([1, 1]);
  });

  it('streams the first write before the handler finishes', async () => {
    server = await startFunctionUrl({ module });
    const response = await fetch(`${server.url}/?wait=300`, { method: 'POST' });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toMatch(/"invocation":1/);
    expect(first).not.toContain('done');
    expect(await readRest(reader)).toBe('done\n');
  });

  it('answers 502 when the handler throws before writing, and the same environment serves the next request', async () => {
    server = await startFunctionUrl({ module, maxEnvironments: 1 });
    expect((await call(`${server.url}/?fail=1`)).status).toBe(502);
    const next = await call(server.url);
    expect(next.status).toBe(200);
    expect(next.first.invocation).toBe(2);
  });
});
