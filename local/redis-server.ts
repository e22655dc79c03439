import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, Socket } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** True when something answers PING with PONG at host:port. */
export async function redisAnswers(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('data', (data) => finish(data.toString().startsWith('+PONG')));
    socket.connect(port, host, () => socket.write('PING\r\n'));
  });
}

export interface RedisProcess {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * A throwaway `redis-server` on a free loopback port, nothing on disk. With `cluster`, a one-node
 * Redis Cluster owning every slot, which raises CROSSSLOT like ElastiCache Serverless does.
 */
export async function spawnRedisServer(options: { cluster?: boolean } = {}): Promise<RedisProcess> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (options.cluster) {
    const dir = (await run('mktemp', ['-d'])).stdout.trim();
    args.push(
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `${dir}/nodes.conf`,
      '--cluster-announce-ip',
      '127.0.0.1',
      '--dir',
      dir,
    );
  }
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const exited = once(child, 'exit');
  for (let attempt = 0; attempt < 100 && !(await redisAnswers('127.0.0.1', port)); attempt++) {
    if (child.exitCode !== null) throw new Error('redis-server exited at start');
    await new Promise((r) => setTimeout(r, 50));
  }
  if (options.cluster) {
    await run('redis-cli', ['-p', String(port), 'cluster', 'addslotsrange', '0', '16383']);
    for (let attempt = 0; attempt < 100; attempt++) {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
      if (stdout.includes('cluster_state:ok')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export async function hasRedisServerBinary(): Promise<boolean> {
  try {
    await run('redis-server', ['--version']);
    return true;
  } catch {
    return false;
  }
}
