import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { testRedis } from '../support/redis.ts';

// CI proves the suite on a Redis that starts empty by pointing REDIS_URL at a throwaway server
// (.ci/empty-redis-suite). That proof holds only if nothing reaches for the machine's :6379 on its own.
const ROOT = join(import.meta.dirname, '..', '..');
// This file names it to look for it.
const ALLOWED = new Set(['test/tooling/redis-url.test.ts']);

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(dir, file));
}

describe('REDIS_URL reaches every test', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("testRedis gives REDIS_URL's server, on the test's own database, without probing :6379", async () => {
    vi.stubEnv('REDIS_URL', 'redis://:secret@127.0.0.1:1/0');
    expect(await testRedis(6)).toEqual({ url: 'redis://:secret@127.0.0.1:1/6' });
  });

  it("no test, local stack or benchmark file names :6379 (the machine's shared Redis)", () => {
    const offenders = [...sources('test'), ...sources('local'), ...sources('bench')]
      // The CDK stack tests speak of ElastiCache's port, not of a Redis they connect to.
      .filter((file) => !file.startsWith(join('test', 'infra')))
      .filter((file) => !ALLOWED.has(relative('.', file)))
      .filter((file) =>
        readFileSync(join(ROOT, file), 'utf8')
          .split('\n')
          .some((line) => !line.trimStart().startsWith('//') && /\b6379\b/.test(line)),
      );
    expect(offenders).toEqual([]);
  });
});
