import { randomUUID } from 'node:crypto';
import { decodeEvent, decodeNotice, isEventRecord } from '../events/codec.ts';
import type { Notice } from '../events/codec.ts';
import type { LoggedEvent } from '../events/schemas.ts';
import type { EventLog, Subscription } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { Logger } from '../telemetry/logger.ts';

export type FeedListener = {
  event(e: LoggedEvent): void;
  notice(n: Notice): void;
};

/**
 * The gateway's view of `gemello.events`: every record from the moment it starts, handed
 * to the listeners of its conversation. Each gateway reads all partitions in a group of
 * its own and keeps no offsets: what it missed while down, a client gets with `resume`.
 */
export function createFeed(log: EventLog, logger: Logger, instanceId = randomUUID()) {
  const listeners = new Map<string, Set<FeedListener>>();
  let subscription: Subscription | null = null;

  return {
    async start(): Promise<void> {
      await log.ensureTopics([TOPICS.commands, TOPICS.events]);
      let resolveAssigned!: () => void;
      const assigned = new Promise<void>((r) => (resolveAssigned = r));
      subscription = await log.consume({
        group: `gemello-gateway-${instanceId}`,
        topic: TOPICS.events,
        from: 'latest',
        commit: false,
        onAssigned: (parts) => {
          if (parts.length) resolveAssigned();
        },
        handle: async (_partition, records) => {
          for (const r of records) {
            const set = listeners.get(r.key);
            if (!set?.size) continue;
            try {
              if (isEventRecord(r)) {
                const e = decodeEvent(r);
                for (const l of set) l.event(e);
              } else {
                const n = decodeNotice(r);
                for (const l of set) l.notice(n);
              }
            } catch (err) {
              logger.warn(`feed: skipping record ${r.partition}/${r.offset}: ${(err as Error).message}`);
            }
          }
        },
      });
      // Until the group has its partitions, "latest" is not yet fixed: an event appended
      // before that could be missed, so the gateway is not ready before.
      await assigned;
    },
    /** Follows a conversation; returns the function that stops following. */
    follow(conversationId: string, listener: FeedListener): () => void {
      let set = listeners.get(conversationId);
      if (!set) listeners.set(conversationId, (set = new Set()));
      set.add(listener);
      return () => {
        set.delete(listener);
        if (set.size === 0 && listeners.get(conversationId) === set) listeners.delete(conversationId);
      };
    },
    async stop(): Promise<void> {
      await subscription?.stop();
      subscription = null;
    },
  };
}

export type Feed = ReturnType<typeof createFeed>;
