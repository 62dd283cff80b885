import type { Twin } from '../actors/ports.ts';
import type { LoggedEvent } from '../events/schemas.ts';
import type { Db } from '../stores/sql.ts';

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

export type TwinView = Twin & { createdAt: string; updatedAt: string };

export type MessageView = {
  seq: number;
  role: 'user' | 'assistant';
  content: string;
  replyToSeq: number | null;
  tokensUsed: number | null;
  model: string | null;
  modelLatencyMs: number | null;
  createdAt: string | null;
  metadata: Record<string, unknown>;
};

export type ConversationView = {
  id: string;
  twinId: string | null;
  twinName: string | null;
  userId: string | null;
  startedAt: string | null;
  endedAt: string | null;
  metadata: Record<string, unknown>;
  lastSeq: number;
  updatedAt: string;
  /** When the conversation was erased (its messages and confirmed data are gone), or null. */
  erasedAt: string | null;
  /** Prompts whose reply is still owed, and replies the model could not give. */
  pendingPrompts: number[];
  failedReplies: number;
  messages: MessageView[];
  /** The current value of every confirmed key. */
  confirmedData: Record<string, unknown>;
  /** Each confirmation, oldest first. */
  confirmations: { seq: number; key: string; value: unknown; confirmedAt: string | null }[];
};

export type AudioView = { id: string; bytes: Uint8Array; contentType: string; format: string; durationSec: number; voice: string };

export type ReadApi = ReturnType<typeof createReadApi>;

/** The read models as the HTTP API serves them (camelCase, ISO timestamps). */
export function createReadApi(db: Db) {
  return {
    /** Every twin of the catalog, by name. */
    async listTwins(): Promise<TwinView[]> {
      const rows = await db.query<{ id: string; name: string; system_prompt: string; model: string; voice_id: string | null; created_at: Date; updated_at: Date }>(
        'SELECT id, name, system_prompt, model, voice_id, created_at, updated_at FROM digital_twins ORDER BY name, id',
      );
      return rows.map((r) => ({ id: r.id, name: r.name, systemPrompt: r.system_prompt, model: r.model, voiceId: r.voice_id ?? '', createdAt: iso(r.created_at)!, updatedAt: iso(r.updated_at)! }));
    },

    /** A conversation with its messages in seq order and its confirmed data, or null. */
    async getConversation(id: string): Promise<ConversationView | null> {
      const [c] = await db.query<{
        id: string; twin_id: string | null; twin_name: string | null; user_id: string | null; started_at: Date | null; ended_at: Date | null;
        metadata: Record<string, unknown>; last_seq: number; updated_at: Date; pending: number[] | null; failed: number | null; erased_at: Date | null;
      }>(
        `SELECT id, twin_id, twin_name, user_id, started_at, ended_at, metadata, last_seq, updated_at, erased_at,
                state->'pendingPrompts' AS pending, (state->>'failedReplies')::int AS failed
         FROM conversations WHERE id = $1`,
        [id],
      );
      if (!c) return null;
      const messages = await db.query<{
        seq: number; role: 'user' | 'assistant'; content: string; reply_to_seq: number | null; tokens_used: number | null; model: string | null;
        model_latency_ms: number | null; created_at: Date | null; metadata: Record<string, unknown>;
      }>(
        'SELECT seq, role, content, reply_to_seq, tokens_used, model, model_latency_ms, created_at, metadata FROM messages WHERE conversation_id = $1 ORDER BY seq',
        [id],
      );
      const confirmed = await db.query<{ seq: number; key: string; value: unknown; confirmed_at: Date | null }>(
        'SELECT seq, key, value, confirmed_at FROM confirmed_data WHERE conversation_id = $1 ORDER BY seq, key',
        [id],
      );
      const confirmedData: Record<string, unknown> = {};
      for (const r of confirmed) confirmedData[r.key] = r.value;
      return {
        id: c.id,
        twinId: c.twin_id,
        twinName: c.twin_name,
        userId: c.user_id,
        startedAt: iso(c.started_at),
        endedAt: iso(c.ended_at),
        metadata: c.metadata,
        lastSeq: Number(c.last_seq),
        updatedAt: iso(c.updated_at)!,
        erasedAt: iso(c.erased_at ?? null),
        pendingPrompts: c.pending ?? [],
        failedReplies: c.failed ?? 0,
        messages: messages.map((r) => ({
          seq: r.seq,
          role: r.role,
          content: r.content,
          replyToSeq: r.reply_to_seq,
          tokensUsed: r.tokens_used,
          model: r.model,
          modelLatencyMs: r.model_latency_ms,
          createdAt: iso(r.created_at),
          metadata: r.metadata,
        })),
        confirmedData,
        confirmations: confirmed.map((r) => ({ seq: r.seq, key: r.key, value: r.value, confirmedAt: iso(r.confirmed_at) })),
      };
    },

    /** A conversation's projected events after `afterSeq`, in seq order, as they are in the log. */
    async getEvents(id: string, afterSeq = 0, limit = 1000): Promise<LoggedEvent[]> {
      const rows = await db.query<{
        event_id: string; conversation_id: string; seq: number; type: string; schema_version: number; occurred_at: Date | null;
        causation_id: string | null; correlation_id: string | null; traceparent: string | null; data: unknown; partition: number; log_offset: number;
      }>(
        `SELECT event_id, conversation_id, seq, type, schema_version, occurred_at, causation_id, correlation_id, traceparent, data, partition, log_offset
         FROM events WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
        [id, afterSeq, limit],
      );
      return rows.map((r) => ({
        eventId: r.event_id,
        conversationId: r.conversation_id,
        seq: r.seq,
        type: r.type,
        schemaVersion: r.schema_version,
        occurredAt: iso(r.occurred_at) ?? '',
        causationId: r.causation_id,
        correlationId: r.correlation_id,
        traceparent: r.traceparent,
        data: r.data,
        position: { partition: Number(r.partition), offset: Number(r.log_offset) },
      }) as LoggedEvent);
    },

    /** The audio bytes and their content type (counted as a hit), or null. */
    async getAudio(id: string): Promise<AudioView | null> {
      const [r] = await db.query<{ id: string; audio: Uint8Array; content_type: string; format: string; duration_seconds: number; voice: string }>(
        `UPDATE audio_cache SET hits = hits + 1, last_accessed_at = now() WHERE id = $1
         RETURNING id, audio, content_type, format, duration_seconds, voice`,
        [id],
      );
      if (!r) return null;
      return { id: r.id, bytes: new Uint8Array(r.audio), contentType: r.content_type, format: r.format, durationSec: Number(r.duration_seconds), voice: r.voice };
    },

    /** Writes the catalog into digital_twins; updated_at moves only for a twin that changed. */
    async upsertTwins(twins: Twin[]): Promise<void> {
      if (!twins.length) return;
      // One row per id (the last wins): an upsert cannot touch the same row twice.
      const byId = new Map(twins.map((t) => [t.id, { id: t.id, name: t.name, system_prompt: t.systemPrompt, model: t.model, voice_id: t.voiceId }]));
      const rows = [...byId.values()];
      await db.query(
        `INSERT INTO digital_twins (id, name, system_prompt, model, voice_id)
         SELECT x.id, x.name, x.system_prompt, COALESCE(x.model, 'gpt-4.1-nano'), x.voice_id
         FROM jsonb_to_recordset($1::text::jsonb) AS x(id text, name text, system_prompt text, model text, voice_id text)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, system_prompt = excluded.system_prompt, model = excluded.model,
           voice_id = excluded.voice_id, updated_at = now()
         WHERE (digital_twins.name, digital_twins.system_prompt, digital_twins.model, digital_twins.voice_id)
           IS DISTINCT FROM (excluded.name, excluded.system_prompt, excluded.model, excluded.voice_id)`,
        [JSON.stringify(rows)],
      );
    },
  };
}
