import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type FunctionUrlServer, startFunctionUrl } from '../../../local/lambda-runtime/function-url.ts';
import { readRest } from '../../support/streams.ts';

// The Function URL emulator with execution environments of their own (worker threads), as Lambda runs them.
const module = { path: join(import.meta.dirname, 'fixtures', 'counting-handler.ts'), exportName: 'handler' };
let server: FunctionUrlServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function call(url: string) {
  const response = await fetch(url, { method: 'POST' });
  const text = await response.text();
  return {
    status: response.status,
    text,
    first: JSON.parse(text.split('\n')[0] ?? '{}') as { environment: number; invocation: number },
  };
}

describe('Function URL emulator with isolated execution environments', () => {
  it('serves concurrent requests from separate environments, and reuses a warm one after', async () => {
    server = await startFunctionUrl({ module, maxEnvironments: 4 });
    const [a, b] = await Promise.all([call(`${server.url}/?wait=200`), call(`${server.url}/?wait=200`)]);
    expect(a.first.environment).not.toBe(b.first.environment);
    expect([a.first.invocation, b.first.invocation]).toEqual([1, 1]);
    expect(a.text.endsWith('done\n')).toBe(true);
    const c = await call(server.url);
    expect([a.first.environment, b.first.environment]).toContain(c.first.environment);
    expect(c.first.invocation).toBe(2);
  });

  it('queues requests beyond the environment limit instead of sharing an environment', async () => {
    server = await startFunctionUrl({ module, maxEnvironments: 1 });
    const [a, b] = await Promise.all([call(`${server.url}/?wait=100`), call(`${server.url}/?wait=100`)]);
    expect(a.first.environment).toBe(b.first.environment);
    expect([a.first.invocation, b.first.invocation].sort()).toEqual([1, 2]);
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

  it('answers 502 when the handler throws before writing, and the environment serves the next request', async () => {
    server = await startFunctionUrl({ module, maxEnvironments: 1 });
    expect((await call(`${server.url}/?fail=1`)).status).toBe(502);
    const next = await call(server.url);
    expect(next.status).toBe(200);
    expect(next.first.invocation).toBe(2);
  });
});
