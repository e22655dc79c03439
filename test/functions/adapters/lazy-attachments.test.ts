import { describe, expect, it } from 'vitest';
import { LazyAttachmentStore } from '../../../functions/adapters/lazy-attachments.ts';
import type { AttachmentStore } from '../../../functions/core/ports.ts';

/** A store that records its calls, loaded through a counted loader. */
function counted() {
  const calls: string[] = [];
  const inner: AttachmentStore = {
    put: async (owner, index, content) => {
      calls.push(`put ${owner.messageId}/${index}`);
      return {
        key: `k/${index}`,
        mediaType: content.mediaType,
        name: content.name,
        size: content.bytes.length,
      };
    },
    get: async (ref) => {
      calls.push(`get ${ref.key}`);
      return new Uint8Array([1]);
    },
    owns: () => {
      throw new Error('the lazy store answers owns itself');
    },
    deleteSession: async (userId, sessionId) => {
      calls.push(`deleteSession ${userId} ${sessionId}`);
    },
    deleteUser: async (userId) => {
      calls.push(`deleteUser ${userId}`);
    },
  };
  let loads = 0;
  const store = new LazyAttachmentStore(async () => {
    loads++;
    return inner;
  });
  return { store, calls, loads: () => loads };
}

describe('LazyAttachmentStore', () => {
  it('loads nothing until a call needs the store, and answers owns without loading', () => {
    const { store, loads } = counted();
    expect(store.owns('user-1', 'users/user-1/sessions/s/m/0')).toBe(true);
    expect(store.owns('user-1', 'users/user-2/sessions/s/m/0')).toBe(false);
    expect(store.owns('user-1', 'users/user-1/../user-2/sessions/s/m/0')).toBe(false);
    expect(loads()).toBe(0);
  });

  it('loads once for concurrent first calls and passes every call through', async () => {
    const { store, calls, loads } = counted();
    const owner = { userId: 'u', sessionId: 's', messageId: 'm' };
    const content = { mediaType: 'image/png' as const, name: 'a.png', bytes: new Uint8Array([1, 2]) };
    const [ref] = await Promise.all([
      store.put(owner, 0, content),
      store.get({ key: 'k/9', mediaType: 'image/png', name: 'b.png', size: 1 }, AbortSignal.timeout(1000)),
      store.deleteSession('u', 's'),
    ]);
    await store.deleteUser('u');
    expect(ref).toEqual({ key: 'k/0', mediaType: 'image/png', name: 'a.png', size: 2 });
    expect(calls).toEqual(['put m/0', 'get k/9', 'deleteSession u s', 'deleteUser u']);
    expect(loads()).toBe(1);
  });
});
