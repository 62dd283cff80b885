import type { Snapshot, SnapshotStore } from '../../actors/ports.ts';
import { parseSnapshot } from './validate.ts';

/** The embedded snapshot store: an in-process map holding the same JSON Redis would. */
export function createMemorySnapshotStore(): SnapshotStore & { raw: Map<string, string> } {
  const raw = new Map<string, string>();
  const checkpoints = new Map<number, number>();
  const active = new Map<number, string[]>();
  return {
    kind: 'memory',
    raw,
    async get(id) {
      const text = raw.get(id);
      return text === undefined ? null : parseSnapshot(id, text);
    },
    async put(s: Snapshot) {
      const cur = raw.get(s.conversationId);
      if (cur !== undefined) {
        try {
          if (parseSnapshot(s.conversationId, cur).seq > s.seq) return;
        } catch {
          // a corrupt one is replaced
        }
      }
      raw.set(s.conversationId, JSON.stringify(s));
    },
    async delete(id) {
      raw.delete(id);
    },
    async getCheckpoint(p) {
      return checkpoints.get(p) ?? null;
    },
    async putCheckpoint(p, offset) {
      checkpoints.set(p, offset);
    },
    async putActive(p, ids) {
      active.set(p, [...ids]);
    },
    async getActive(p) {
      return active.get(p) ?? [];
    },
    async ping() {},
    async close() {},
  };
}
