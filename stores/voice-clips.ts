import type { VoiceKeeper } from '../gateway/session/voice.ts';
import type { KeyStore } from '../sealing/keys.ts';
import { openBytes, sealBytes } from '../sealing/seal.ts';
import type { Db } from './sql.ts';

/** What a kept clip is bound to: it opens only as this conversation's clip with this id. */
const context = (conversationId: string, audioId: string) => `${conversationId}|${audioId}|voice`;

const INSERT = `
INSERT INTO voice_clips (id, conversation_id, format, content_type, sealed_audio, duration_seconds, size_bytes)
VALUES ($1, $2, $3, $4, $5::bytea, $6, $7) ON CONFLICT (id) DO NOTHING`;

/**
 * The caller's audio, kept (GEMELLO_KEEP_VOICE) in `voice_clips`, sealed with the
 * conversation's data key: erasure destroys the key, and the projection deletes the rows.
 */
export function createVoiceClips(db: Db, keys: KeyStore): VoiceKeeper & { read(conversationId: string, audioId: string): Promise<{ bytes: Uint8Array; contentType: string } | null> } {
  return {
    async keep({ audioId, conversationId, format, contentType, bytes, durationSec }) {
      const key = await keys.create(conversationId);
      await db.query(INSERT, [audioId, conversationId, format, contentType, sealBytes(key, bytes, context(conversationId, audioId)), durationSec, bytes.byteLength]);
    },
    /** A kept clip opened with its conversation's key; null when there is none or the key is gone. */
    async read(conversationId, audioId) {
      const [row] = await db.query<{ sealed_audio: Uint8Array; content_type: string }>('SELECT sealed_audio, content_type FROM voice_clips WHERE id = $1 AND conversation_id = $2', [audioId, conversationId]);
      const key = row ? (await keys.get([conversationId])).get(conversationId) : undefined;
      const bytes = row && key ? openBytes(key, new Uint8Array(row.sealed_audio), context(conversationId, audioId)) : null;
      return bytes ? { bytes, contentType: row!.content_type } : null;
    },
  };
}
