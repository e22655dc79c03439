import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildPage } from '../../local/stack/web-server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The chat page built once for the run; each browser test file serves it on a port of its own. */
    pageBuild: string;
  }
}

export default async function setup(project: TestProject) {
  const dir = await mkdtemp(join(tmpdir(), 'chat-page-build-'));
  await buildPage(dir);
  project.provide('pageBuild', dir);
  return () => rm(dir, { recursive: true, force: true });
}
