import { randomUUID } from 'node:crypto';
import { decodeEvent, decodeNotice, isEventRecord } from '../events/codec.ts';
import type { Notice } from '../events/codec.ts';
import { keysFor, SEALED_HEADER } from '../sealing/keys.ts';
import type { Keyring, KeyStore } from '../sealing/keys.ts';
import type { EventType, LoggedEvent } from '../events/schemas.ts';
import type { EventLog, LogRecord, Subscription } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { NoticeSource } from '../actors/command-client.ts';
import type { AudioChunkUpdate, ReplyStreams, StreamSoFar, StreamUpdate } from '../actors/ports.ts';

/**
 * Content the feed does not open: no live frame carries a prompt's text (a socket is answered
 * with its reply; `resume` reads the read model), so its AES-GCM open is saved. It reads as
 * the erased marker to listeners.
 */
const UNOPENED: ReadonlySet<EventType> = new Set<EventType>(['PromptReceived']);

/** How often the feed's consumer heartbeats in its group of one. */
const FEED_HEARTBEAT_MS = 250;

export type FeedListener = {
  event(e: LoggedEvent): void;
  notice(n: Notice): void;
  /** Live reply text (not events): deltas of a reply in flight. */
  stream?(u: StreamUpdate): void;
};

/**
 * The gateway's view of `gemello.events`: every record from the moment it starts, handed
 * to the listeners of its conversation. Each gateway reads all partitions in a group of
 * its own and keeps no offsets: what it missed while down, a client gets with `resume`.
 */
export function createFeed(log: EventLog, logger: Logger, instanceId = randomUUID(), keys: KeyStore | null = null, streams: ReplyStreams | null = null) {
  const listeners = new Map<string, Set<FeedListener>>();
  let subscription: Subscription | null = null;
  let unsubscribe: (() => void) | null = null;

  /** The keys of a batch, tried a few times; undefined when the key store does not answer. */
  async function loadKeys(records: LogRecord[]): Promise<Keyring | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await keysFor(keys, records);
      } catch (err) {
        if (attempt >= 3) {
          logger.warn(`feed: the data keys could not be read (${(err as Error).message}); sealed records of this batch are not pushed (clients get them with resume)`);
          return undefined;
        }
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  return {
    async start(): Promise<void> {
      // Live reply text comes straight from the actor hosts, not through the log.
      unsubscribe = streams ? await streams.subscribe((u) => {
        const set = listeners.get(u.conversationId);
        if (set) for (const l of set) l.stream?.(u);
      }) : null;
      await log.ensureTopics([TOPICS.commands, TOPICS.events]);
      let resolveAssigned!: () => void;
      const assigned = new Promise<void>((r) => (resolveAssigned = r));
      subscription = await log.consume({
        group: `gemello-gateway-${instanceId}`,
        topic: TOPICS.events,
        from: 'latest',
        commit: false,
        // The group is this gateway's alone: no other member joins it, so there is no
        // rebalance to hear of early, and a heartbeat every 50 ms (the default) was most of an
        // idle gateway's CPU (20 requests a second). Still well inside the session timeout.
        heartbeatMs: FEED_HEARTBEAT_MS,
        onAssigned: (parts) => {
          if (parts.length) resolveAssigned();
        },
        handle: async (_partition, records) => {
          const followed = records.filter((r) => listeners.get(r.key)?.size);
          if (!followed.length) return;
          // Only the followed conversations' keys; a resident one is cached.
          const ring = await loadKeys(followed);
          for (const r of followed) {
            const set = listeners.get(r.key);
            if (!set?.size) continue;
            if (keys && !ring && r.headers[SEALED_HEADER] === '1') continue; // not shown as erased: the client can resume
            try {
              if (isEventRecord(r)) {
                const e = decodeEvent(r, ring, UNOPENED);
                if (e.type === 'ConversationErased') keys?.forget(e.conversationId);
                for (const l of set) l.event(e);
              } else {
                const n = decodeNotice(r, ring);
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
    /** Conversations followed by at least one socket (each socket follows at most MAX_FOLLOWED). */
    size(): number {
      return listeners.size;
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
    /** The conversation's reply in flight as far as it has streamed (null: none, or no streams here). */
    async streamed(conversationId: string): Promise<StreamSoFar | null> {
      return streams ? streams.current(conversationId) : null;
    },
    /** A clip just synthesised that the audio cache may not hold yet (null: none, or no streams here). */
    async clip(audioId: string): Promise<{ bytes: Uint8Array; contentType: string } | null> {
      return streams ? streams.clip(audioId).catch(() => null) : null;
    },
    /** The conversation's recent audio chunks (empty: none, or no streams here). */
    async chunks(conversationId: string): Promise<AudioChunkUpdate[]> {
      return streams ? streams.chunks(conversationId) : [];
    },
    async stop(): Promise<void> {
      unsubscribe?.();
      unsubscribe = null;
      await subscription?.stop();
      subscription = null;
    },
  };
}

export type Feed = ReturnType<typeof createFeed>;

/** The feed as the command client's source of answers: the notices of a conversation, pushed. */
export const feedNotices = (feed: Feed): NoticeSource => async (conversationId, notice) => feed.follow(conversationId, { event() {}, notice });
