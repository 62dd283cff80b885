import { Redis } from 'ioredis';
import type { AudioChunkUpdate, ReplyStreams, StreamUpdate } from '../../actors/ports.ts';

/** Audio chunks kept per conversation for a socket that resumes. */
const MAX_CHUNKS = 64;
/** A clip just synthesised is kept this long, until the audio cache has it. */
const CLIP_SEC = 60;

export type RedisStreamsOptions = {
  url: string;
  /** Key and channel prefix (the namespace), e.g. `gemello:`. */
  prefix?: string;
  /** A reply in flight is forgotten after this long without an update (a host that died before `end`). */
  ttlSec?: number;
};

/**
 * Reply streams over Redis: every update is PUBLISHed on `<prefix>streams` (one channel, so
 * a gateway subscribes once and never races a per-conversation SUBSCRIBE), and the text so
 * far is kept under `<prefix>stream:<conversationId>` as "<promptSeq> <gen>\n<text>" (SET on
 * start, APPEND per delta, DEL on end), so a socket that resumes mid-stream gets it. The
 * last audio chunks are kept as JSON in the list `<prefix>stream-audio:<conversationId>`, and a
 * clip just synthesised under `<prefix>clip:<audioId>` for a minute.
 * The updates published in one turn of the event loop (every conversation's) go out
 * together: one pipeline, written in call order over one connection, with one PUBLISH of
 * them all (a single update as an object, several as an array): a socket write and a Redis
 * command per update cost more than the rest of the streaming.
 */
export function createRedisReplyStreams(options: RedisStreamsOptions): ReplyStreams {
  const prefix = options.prefix ?? 'gemello:';
  const ttl = options.ttlSec ?? 120;
  const channel = `${prefix}streams`;
  const key = (id: string) => `${prefix}stream:${id}`;
  const audioKey = (id: string) => `${prefix}stream-audio:${id}`;
  const clipKey = (id: string) => `${prefix}clip:${id}`;
  // Connected on first use: a process that never streams (the CLI) opens nothing.
  let conn: Redis | null = null;
  const redisOf = () => {
    if (!conn) {
      conn = new Redis(options.url, { maxRetriesPerRequest: 2 });
      conn.on('error', () => {});
    }
    return conn;
  };
  let sub: Redis | null = null;
  const listeners = new Set<(u: StreamUpdate) => void>();
  let queued: Array<{ u: StreamUpdate; resolve: () => void; reject: (err: unknown) => void }> = [];

  function flush() {
    const batch = queued;
    queued = [];
    const p = redisOf().pipeline();
    for (const { u } of batch) {
      if (u.kind === 'start') p.set(key(u.conversationId), `${u.promptSeq} ${u.gen}\n`, 'EX', ttl);
      else if (u.kind === 'delta') p.append(key(u.conversationId), u.text).expire(key(u.conversationId), ttl);
      else if (u.kind === 'audio') p.rpush(audioKey(u.conversationId), JSON.stringify(u)).ltrim(audioKey(u.conversationId), -MAX_CHUNKS, -1).expire(audioKey(u.conversationId), ttl);
      else p.del(key(u.conversationId));
    }
    p.publish(channel, JSON.stringify(batch.length === 1 ? batch[0]!.u : batch.map((b) => b.u)));
    p.exec().then((results) => {
      const failed = results?.find(([err]) => err);
      for (const b of batch) failed ? b.reject(failed[0]) : b.resolve();
    }, (err: unknown) => {
      for (const b of batch) b.reject(err);
    });
  }

  return {
    kind: 'redis',
    publish(u) {
      return new Promise<void>((resolve, reject) => {
        queued.push({ u, resolve, reject });
        if (queued.length === 1) setImmediate(flush);
      });
    },
    async current(conversationId) {
      const raw = await redisOf().get(key(conversationId));
      if (!raw) return null;
      const nl = raw.indexOf('\n');
      const [seq, gen] = raw.slice(0, nl).split(' ');
      return { promptSeq: Number(seq), gen: gen ?? '', text: raw.slice(nl + 1) };
    },
    async forget(conversationId) {
      const recent = (await redisOf().lrange(audioKey(conversationId), 0, -1)).map((r) => (JSON.parse(r) as AudioChunkUpdate).audioId);
      await redisOf().del(key(conversationId), audioKey(conversationId), ...recent.map(clipKey));
    },
    async keepClip(audioId, clip) {
      // "<content type>\n<bytes>": one binary value.
      await redisOf().set(clipKey(audioId), Buffer.concat([Buffer.from(`${clip.contentType}\n`), clip.bytes]), 'EX', CLIP_SEC);
    },
    async clip(audioId) {
      const raw = await redisOf().getBuffer(clipKey(audioId));
      if (!raw) return null;
      const nl = raw.indexOf(10);
      return { contentType: raw.subarray(0, nl).toString('utf8'), bytes: new Uint8Array(raw.subarray(nl + 1)) };
    },
    async chunks(conversationId) {
      const raw = await redisOf().lrange(audioKey(conversationId), 0, -1);
      return raw.map((r) => JSON.parse(r) as AudioChunkUpdate);
    },
    async subscribe(listener) {
      listeners.add(listener);
      if (!sub) {
        sub = redisOf().duplicate();
        sub.on('error', () => {});
        sub.on('message', (_ch: string, text: string) => {
          let updates: StreamUpdate | StreamUpdate[];
          try {
            updates = JSON.parse(text) as StreamUpdate | StreamUpdate[];
          } catch {
            return;
          }
          for (const u of Array.isArray(updates) ? updates : [updates]) for (const l of listeners) l(u);
        });
        await sub.subscribe(channel);
      }
      return () => void listeners.delete(listener);
    },
    async close() {
      listeners.clear();
      await sub?.quit().catch(() => {});
      await conn?.quit().catch(() => {});
    },
  };
}
