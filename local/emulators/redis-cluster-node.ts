import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request } from 'node:http';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * One cluster-mode `redis-server` with no slots yet. A new node refuses to serve for its first 2 s
 * (Redis's writable delay after a start), and for `cluster-node-timeout` (at least 500 ms) after it
 * gets its slots: nodes started ahead of time by a pool (below) serve about 0.5 s after their slots.
 */
export interface ClusterNode {
  port: number;
  busPort: number;
  pid: number;
  /** Stops the process and removes its files, whichever process started it. */
  stop(): Promise<void>;
}

/** Names the pool's endpoint to the processes a test run forks (test/support/redis-node-pool.global.ts). */
export const NODE_POOL_ENV = 'REDIS_CLUSTER_NODE_POOL';

export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** True when something answers PING at host:port (PONG, or NOAUTH from a server that wants a password). */
async function redisAnswers(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('data', (data) => finish(/^(\+PONG|-NOAUTH)/.test(data.toString())));
    socket.connect(port, host, () => socket.write('PING\r\n'));
  });
}

export async function waitForAnswer(port: number, child: ChildProcess): Promise<void> {
  for (let attempt = 0; attempt < 100 && !(await redisAnswers('127.0.0.1', port)); attempt++) {
    if (child.exitCode !== null) throw new Error('redis-server exited at start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** Starts a node in this process. */
async function spawnClusterNode(): Promise<ClusterNode & { child: ChildProcess }> {
  const dir = await mkdtemp(join(tmpdir(), 'chat-redis-node-'));
  const [port, busPort] = [await freePort(), await freePort()];
  const args = [
    ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    ...['--cluster-enabled', 'yes', '--cluster-port', String(busPort)],
    ...['--cluster-config-file', join(dir, 'nodes.conf'), '--dir', dir],
    // Without an announced address a cluster client cannot reach the nodes it learns of.
    ...['--cluster-announce-ip', '127.0.0.1', '--cluster-node-timeout', '500'],
  ];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const removeFiles = () => rm(dir, { recursive: true, force: true });
  try {
    await waitForAnswer(port, child);
  } catch (error) {
    await removeFiles();
    throw error;
  }
  child.once('exit', () => void removeFiles().catch(() => undefined));
  return {
    port,
    busPort,
    pid: child.pid ?? 0,
    child,
    async stop() {
      await stopProcess(child);
      await removeFiles();
    },
  };
}

/** A node from the run's pool when there is one (started at least a moment ago), else one started here. */
export async function clusterNode(): Promise<ClusterNode> {
  const pool = process.env[NODE_POOL_ENV];
  if (!pool) return spawnClusterNode();
  const taken = await new Promise<{ port: number; busPort: number; pid: number }>((resolve, reject) => {
    const req = request(pool, { method: 'POST' }, async (response) => {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      if (response.statusCode === 200) resolve(JSON.parse(Buffer.concat(chunks).toString()));
      else reject(new Error(`the Redis node pool answered ${response.statusCode}`));
    });
    req.once('error', reject);
    req.end();
  });
  return { ...taken, stop: () => stopPid(taken.pid) };
}

/** SIGTERM to a node another process started (which reaps it and removes its files), then wait until it is gone. */
async function stopPid(pid: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(pid, 'SIGTERM');
  for (let attempt = 0; attempt < 200 && alive(); attempt++) await new Promise((r) => setTimeout(r, 25));
}

/**
 * Keeps `size` idle nodes started ahead of time and hands one out per POST, starting its replacement at
 * once. Every node it started is stopped on close, including nodes a test process took and left running.
 */
export async function startClusterNodePool(size: number): Promise<{ url: string; close(): Promise<void> }> {
  const all = new Set<ClusterNode & { child: ChildProcess }>();
  const idle: Array<Promise<ClusterNode & { child: ChildProcess }>> = [];
  const refill = () => {
    const node = spawnClusterNode().then((started) => {
      all.add(started);
      started.child.once('exit', () => all.delete(started));
      return started;
    });
    node.catch(() => undefined);
    idle.push(node);
  };
  for (let i = 0; i < size; i++) refill();
  const server = createHttpServer(async (_request, response) => {
    refill();
    try {
      const node = await idle.shift();
      if (!node) throw new Error('no node');
      response
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ port: node.port, busPort: node.busPort, pid: node.pid }));
    } catch (error) {
      response.writeHead(500).end(String(error));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`,
    async close() {
      server.close();
      await Promise.allSettled(idle);
      await Promise.all([...all].map((node) => node.stop()));
    },
  };
}
