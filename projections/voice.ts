import type { EventLog, LogRecord, Subscription } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { Db, Query } from '../stores/sql.ts';
import { decodeSegment } from '../stores/voice-records.ts';
import type { VoiceSegment } from '../stores/voice-records.ts';
import type { Logger } from '../telemetry/logger.ts';

// A segment of a conversation that is erased (key destroyed, or erased in the read model) is skipped.
const SEGMENT = `
INSERT INTO voice_segments (audio_id, part, conversation_id, sealed)
SELECT $1, $2, $3, $4::bytea
WHERE NOT EXISTS (SELECT 1 FROM conversations WHERE id = $3 AND erased_at IS NOT NULL)
ON CONFLICT (audio_id, part) DO NOTHING`;
// The last segment makes the clip whole: its sealed bytes, in order, become the row.
const WHOLE = `
INSERT INTO voice_clips (id, conversation_id, format, content_type, sealed_audio, duration_seconds, size_bytes)
SELECT $1, $2, $3, $4, string_agg(sealed, ''::bytea ORDER BY part), $5, $6 FROM voice_segments WHERE audio_id = $1
HAVING count(*) = $7
ON CONFLICT (id) DO NOTHING`;
const DONE = 'DELETE FROM voice_segments WHERE audio_id = $1';
const SAVE = `
INSERT INTO voice_sync (partition, next_offset) VALUES ($1, $2)
ON CONFLICT (partition) DO UPDATE SET next_offset = GREATEST(voice_sync.next_offset, EXCLUDED.next_offset), updated_at = now()`;

export type VoiceProjection = {
  /** Applies every partition from its checkpoint to the log's end as of the call; returns the records read. */
  sync(progress?: (done: number) => void): Promise<number>;
  /** Follows the topic (a consumer group) and applies what arrives. */
  start(): Promise<void>;
  stop(): Promise<void>;
};

/**
 * Materialises `voice_clips` from `gemello.voice`: segments are gathered in `voice_segments`
 * until a clip is whole, rows and the partition's checkpoint (`voice_sync`) in one
 * transaction. Deliveries only wake a partition up: what is applied is read from the
 * checkpoint, so a read model that was lost (checkpoints gone, group offsets not) is refilled.
 * Made only where the caller's audio is kept (GEMELLO_KEEP_VOICE): it creates the topic.
 */
/** `topicName`: the voice topic as the broker names it (the namespace included), for the log lines. */
export function createVoiceProjection(options: { log: EventLog; db: Db; keys: KeyStore; logger?: Logger; topicName?: string }): VoiceProjection {
  const { log, db, keys } = options;
  const running = new Map<number, Promise<number>>();
  let sub: Subscription | null = null;

  async function apply(q: Query, s: VoiceSegment): Promise<void> {
    await q.query(SEGMENT, [s.audioId, s.part, s.conversationId, s.sealed]);
    if (s.part !== s.parts - 1) return;
    await q.query(WHOLE, [s.audioId, s.conversationId, s.format, s.contentType, s.durationSec, s.sizeBytes, s.parts]);
    await q.query(DONE, [s.audioId]);
  }

  async function catchUp(p: number, progress?: (n: number) => void): Promise<number> {
    const [row] = await db.query<{ next_offset: string | number }>('SELECT next_offset FROM voice_sync WHERE partition = $1', [p]);
    let n = 0;
    await log.read(TOPICS.voice, p, Number(row?.next_offset ?? 0), async (records: LogRecord[]) => {
      const segments = records.map((r) => decodeSegment(r.value)).filter((s): s is VoiceSegment => s !== null);
      // Erased conversations' keys are gone: their segments stay in the log, unreadable, and are not projected.
      const live = await keys.get(new Set(segments.map((s) => s.conversationId)));
      await db.tx(async (q) => {
        for (const s of segments) if (live.has(s.conversationId)) await apply(q, s);
        await q.query(SAVE, [p, records[records.length - 1]!.offset + 1]);
      });
      n += records.length;
      progress?.(n);
    });
    return n;
  }

  /** One catch-up per partition at a time; a wake-up during one runs another after it. */
  function wake(p: number): Promise<number> {
    const next = (running.get(p) ?? Promise.resolve(0)).catch(() => 0).then(() => catchUp(p));
    running.set(p, next);
    void next.finally(() => running.get(p) === next && running.delete(p)).catch(() => {});
    return next;
  }

  async function sync(progress?: (done: number) => void): Promise<number> {
    await log.ensureTopics([TOPICS.voice]);
    let n = 0;
    for (let p = 0; p < log.partitions; p++) {
      n += await wake(p);
      progress?.(n);
    }
    return n;
  }

  return {
    sync,
    async start() {
      if (sub) return;
      await sync();
      sub = await log.consume({ group: 'gemello-projection-voice', topic: TOPICS.voice, from: 'earliest', handle: async (p) => void (await wake(p)) });
      options.logger?.info(`projection voice consuming ${options.topicName ?? TOPICS.voice} from its checkpoints`);
    },
    async stop() {
      const s = sub;
      sub = null;
      await s?.stop();
      await Promise.allSettled([...running.values()]);
    },
  };
}
