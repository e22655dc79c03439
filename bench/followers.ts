import { Redis } from 'ioredis';
import type { Latencies } from './profiles.ts';
import { warmSessions } from './sessions.ts';
import type { Emulators } from './stack-client.ts';

export interface IdleFollowers {
  followers: number;
  /** Followers whose request had been answered 200 by the end of the window (0: headers held until a write). */
  attached: number;
  idleSeconds: number;
  /** The window with the followers began before they attached (the quick run): their attach counts too. */
  includesAttach: boolean;
  /** Redis commands in the idle window with the turn running alone, and with the followers attached. */
  commandsTurnAlone: number;
  commandsWithFollowers: number;
  /** (with followers − turn alone) ÷ followers ÷ seconds. */
  commandsPerFollowerPerSecond: number;
  /** The commands the followers added, by name (MONITOR on the run's database). */
  byCommand: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Counts the commands clients issue on `database`, by name, as MONITOR reports them (when issued, so a
 * blocking read counts at once), until `stop`. Other databases are left out: the server may be shared, as
 * CI's standalone pass shares one Redis among every test file, each on a database of its own.
 */
async function countCommands(redisUrl: string, database: number) {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const monitor = await redis.monitor();
  const calls: Record<string, number> = {};
  monitor.on('monitor', (_time: string, args: string[], _source: string, db: string) => {
    const name = args[0]?.toLowerCase();
    if (name && Number(db) === database) calls[name] = (calls[name] ?? 0) + 1;
  });
  return {
    stop(): Record<string, number> {
      monitor.disconnect();
      redis.disconnect();
      return calls;
    },
  };
}

const total = (calls: Record<string, number>) => Object.values(calls).reduce((sum, n) => sum + n, 0);

/**
 * What resume followers cost while nothing happens: one turn is kept running with no event to send (the
 * model's first token held back), `followers` clients attach to it with `GET /sessions/{id}/stream`, and
 * the commands on the run's database are counted over an idle window, once before the followers attach
 * (the turn alone) and once with them. `includeAttach` (the quick run) opens the second window before the
 * followers attach, so a window shorter than a blocking read still sees each follower's first one.
 */
export async function idleFollowers(options: {
  emulators: Emulators;
  url: string;
  redisUrl: string;
  latencies: Latencies;
  followers: number;
  idleSeconds: number;
  includeAttach?: boolean;
}): Promise<IdleFollowers> {
  const { emulators, url, followers, idleSeconds } = options;
  const [session] = await warmSessions(emulators.mint, url, 1, 'followers');
  if (!session) throw new Error('no session for the followers');
  const database = Number(new URL(options.redisUrl).pathname.slice(1) || 0);
  const abort = new AbortController();
  const holdMs = (idleSeconds * 2 + 30) * 1000;
  await emulators.setLatencies({ ...options.latencies, modelFirstToken: holdMs });
  try {
    const headers = { authorization: `Bearer ${session.token}` };
    const turn = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'What is a Roth IRA?', session_id: session.sessionId, use_rag: false }),
      signal: abort.signal,
    });
    const turnBody = turn.body?.getReader();
    await turnBody?.read();
    await sleep(500);
    const window = async (counter: Awaited<ReturnType<typeof countCommands>>) => {
      await sleep(idleSeconds * 1000);
      return counter.stop();
    };
    const alone = await window(await countCommands(options.redisUrl, database));
    const counter = options.includeAttach ? await countCommands(options.redisUrl, database) : undefined;
    // Attached once the route answered 200 (its headers may wait for the first write, so not awaited).
    let attached = 0;
    for (let i = 0; i < followers; i++) {
      fetch(`${url}/sessions/${session.sessionId}/stream`, { headers, signal: abort.signal })
        .then((response) => {
          if (response.status === 200) attached++;
          return response.body?.getReader().read();
        })
        .catch(() => undefined);
    }
    const withFollowers = await window(
      counter ?? (await sleep(1500).then(() => countCommands(options.redisUrl, database))),
    );
    turnBody?.cancel().catch(() => undefined);
    const byCommand = Object.fromEntries(
      Object.entries(withFollowers)
        .map(([name, calls]) => [name, calls - (alone[name] ?? 0)] as const)
        .filter(([, calls]) => calls > 0),
    );
    return {
      followers,
      attached,
      idleSeconds,
      includesAttach: options.includeAttach ?? false,
      commandsTurnAlone: total(alone),
      commandsWithFollowers: total(withFollowers),
      commandsPerFollowerPerSecond:
        Math.round(((total(withFollowers) - total(alone)) / followers / idleSeconds) * 100) / 100,
      byCommand,
    };
  } finally {
    abort.abort();
    await emulators.setLatencies(options.latencies);
  }
}
