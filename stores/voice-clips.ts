import type { VoiceKeeper } from '../gateway/session/voice.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import { partitionFor } from '../log/partition.ts';
import type { KeyStore } from '../sealing/keys.ts';
import { openBytes, sealBytes } from '../sealing/seal.ts';
import type { Db } from './sql.ts';
import { clipContext, segmentRecords } from './voice-records.ts';

export type VoiceClips = VoiceKeeper & { read(conversationId: string, audioId: string): Promise<{ bytes: Uint8Array; contentType: string } | null> };

/**
 * The caller's audio, kept (GEMELLO_KEEP_VOICE): sealed with the conversation's data key and
 * appended to `gemello.voice` (the home; `keep` resolves once every segment is acknowledged);
 * `voice_clips` is its read model (projections/voice.ts), where `read` finds it. Erasure
 * destroys the key (the segments no longer open) and the projection deletes the rows.
 */
export function createVoiceClips(db: Db, keys: KeyStore, log?: EventLog): VoiceClips {
  let topicReady: Promise<void> | null = null;
  return {
    async keep({ audioId, conversationId, format, contentType, bytes, durationSec }) {
      if (!log) throw new Error('no log to keep the audio in');
      const key = await keys.create(conversationId);
      const sealed = sealBytes(key, bytes, clipContext(conversationId, audioId));
      await (topicReady ??= log.ensureTopics([TOPICS.voice]).catch((err) => {
        topicReady = null;
        throw err;
      }));
      const partition = partitionFor(conversationId, log.partitions);
      // One append per segment, all queued at once: in order on the partition, each under the broker's batch limit.
      const records = segmentRecords({ audioId, conversationId, format, contentType, durationSec, sizeBytes: bytes.byteLength }, sealed);
      await Promise.all(records.map((r) => log.append(TOPICS.voice, partition, [r])));
    },
    /** A kept clip opened with its conversation's key; null when there is none (yet), or the key is gone. */
    async read(conversationId, audioId) {
      const [row] = await db.query<{ sealed_audio: Uint8Array; content_type: string }>('SELECT sealed_audio, content_type FROM voice_clips WHERE id = $1 AND conversation_id = $2', [audioId, conversationId]);
      const key = row ? (await keys.get([conversationId])).get(conversationId) : undefined;
      const bytes = row && key ? openBytes(key, new Uint8Array(row.sealed_audio), clipContext(conversationId, audioId)) : null;
      return bytes ? { bytes, contentType: row!.content_type } : null;
    },
  };
}
