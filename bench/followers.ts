import { Redis } from 'ioredis';
import type { Latencies } from './profiles.ts';
import { warmSessions } from './sessions.ts';
import type { Emulators } from './stack-client.ts';

export interface IdleFollowers {
  followers: number;
  /** Followers whose request had been answered 200 by the end of the window (0: headers held until a write). */
  attached: number;
  idleSeconds: number;
  /** Redis commands in the idle window with the turn running alone, and with the followers attached. */
  commandsTurnAlone: number;
  commandsWithFollowers: number;
  /** (with followers − turn alone) ÷ followers ÷ seconds. */
  commandsPerFollowerPerSecond: number;
  /** The commands the followers added, by name (INFO commandstats). */
  byCommand: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Calls per command since the server started, from INFO commandstats (the INFO calls themselves left out). */
async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    const [, name, count] = match;
    if (name && name !== 'info') calls[name] = Number(count);
  }
  return calls;
}

const added = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(after)
      .map(([name, calls]) => [name, calls - (before[name] ?? 0)] as const)
      .filter(([, calls]) => calls > 0),
  );
const total = (calls: Record<string, number>) => Object.values(calls).reduce((sum, n) => sum + n, 0);

/**
 * What resume followers cost while nothing happens: one turn is kept running with no event to send (the
 * model's first token held back), `followers` clients attach to it with `GET /sessions/{id}/stream`, and
 * Redis's own command counters are read around an idle window, once before the followers attach (the turn
 * alone) and once with them. The Redis must be this run's alone: any other client's commands count.
 */
export async function idleFollowers(options: {
  emulators: Emulators;
  url: string;
  redisUrl: string;
  latencies: Latencies;
  followers: number;
  idleSeconds: number;
}): Promise<IdleFollowers> {
  const { emulators, url, followers, idleSeconds } = options;
  const [session] = await warmSessions(emulators.mint, url, 1, 'followers');
  if (!session) throw new Error('no session for the followers');
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
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
    const windowed = async () => {
      const before = await commandCalls(redis);
      await sleep(idleSeconds * 1000);
      return added(await commandCalls(redis), before);
    };
    const alone = await windowed();
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
    await sleep(1500);
    const withFollowers = await windowed();
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
      commandsTurnAlone: total(alone),
      commandsWithFollowers: total(withFollowers),
      commandsPerFollowerPerSecond:
        Math.round(((total(withFollowers) - total(alone)) / followers / idleSeconds) * 100) / 100,
      byCommand,
    };
  } finally {
    abort.abort();
    redis.disconnect();
    await emulators.setLatencies(options.latencies);
  }
}
