import { createHash, randomUUID } from 'node:crypto';
import type { AudioSink, Speech, StoredAudio } from '../actors/ports.ts';
import type { Db } from './sql.ts';

type Stored = StoredAudio;
type Row = { id: string; format: string; duration_seconds: number; size_bytes: number; audio?: Uint8Array; content_type?: string };

const toStored = (r: Row, cached: boolean, speech?: Speech): Stored => ({
  audioId: r.id, format: r.format, durationSec: Number(r.duration_seconds), bytes: Number(r.size_bytes), cached,
  ...(speech ? { speech } : r.audio ? { speech: { bytes: new Uint8Array(r.audio), format: r.format, contentType: r.content_type ?? '', durationSec: Number(r.duration_seconds) } } : {}),
});

// The port does not say which format the caller wants before synthesis, so a hit is any
// format of the same text and voice (the oldest, so the answer is stable).
const HIT = `
UPDATE audio_cache SET hits = hits + 1, last_accessed_at = now()
WHERE id = (SELECT id FROM audio_cache WHERE text_hash = $1 AND voice = $2 ORDER BY created_at, id LIMIT 1)
RETURNING id, format, duration_seconds, size_bytes`;
const LOAD = `SELECT id, format, duration_seconds, size_bytes, audio, content_type FROM audio_cache WHERE id = $1`;

const INSERT = `
INSERT INTO audio_cache (id, text_hash, voice, format, content_type, audio, duration_seconds, size_bytes)
VALUES ($1, $2, $3, $4, $5, $6::bytea, $7, $8)
ON CONFLICT (text_hash, voice, format) DO NOTHING
RETURNING id, format, duration_seconds, size_bytes`;

const USE = `INSERT INTO audio_uses (conversation_id, audio_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`;

const EXISTING = `SELECT id, format, duration_seconds, size_bytes FROM audio_cache WHERE text_hash = $1 AND voice = $2 AND format = $3`;

/** sha256 of the text, hex: the audio cache's key with voice and format. */
export const textHash = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** Synthesised speech kept in `audio_cache`, once per (text, voice, format). */
export function createAudioCache(db: Db): AudioSink {
  // Two identical requests in this process share one synthesis.
  const inFlight = new Map<string, Promise<Stored>>();

  async function store(text: string, voice: string, synthesize: () => Promise<Speech>, synthesized?: (audioId: string, speech: Speech) => Promise<void>): Promise<Stored> {
    const hash = textHash(text);
    const [hit] = await db.query<Row>(HIT, [hash, voice]);
    if (hit) return toStored(hit, true);
    const speech = await synthesize();
    const mine = speech;
    const id = randomUUID();
    await synthesized?.(id, speech);
    const [row] = await db.query<Row>(INSERT, [
      id, hash, voice, speech.format, speech.contentType, speech.bytes, speech.durationSec, speech.bytes.byteLength,
    ]);
    if (row) return toStored(row, false, mine);
    // Another process stored the same audio meanwhile: theirs is the one everybody gets.
    const [theirs] = await db.query<Row>(EXISTING, [hash, voice, speech.format]);
    if (!theirs) throw new Error(`audio for ${hash}/${voice}/${speech.format} vanished after a conflicting insert`);
    return toStored(theirs, false, mine);
  }

  return {
    async store({ text, voice, synthesize, conversationId, synthesized }) {
      const key = `${voice}\u0000${text}`;
      let p = inFlight.get(key);
      if (!p) {
        p = store(text, voice, synthesize, synthesized).finally(() => inFlight.delete(key));
        inFlight.set(key, p);
      }
      const stored = await p;
      if (conversationId) await db.query(USE, [conversationId, stored.audioId]);
      return stored;
    },
    async load(audioId) {
      const [row] = await db.query<Row>(LOAD, [audioId]);
      return row ? toStored(row, true).speech ?? null : null;
    },
  };
}
