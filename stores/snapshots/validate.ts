import { z } from 'zod';
import { CorruptSnapshot } from '../../actors/ports.ts';
import type { Snapshot } from '../../actors/ports.ts';
import { upcastState } from '../../actors/upcast-state.ts';
import type { StoredStateAnyVersion } from '../../actors/upcast-state.ts';

const SnapshotShape = z.object({
  conversationId: z.string(),
  seq: z.number().int().nonnegative(),
  eventId: z.string().nullable(),
  position: z.object({ partition: z.number().int().nonnegative(), offset: z.number().int().nonnegative() }),
  state: z.object({
    conversationId: z.string(),
    seq: z.number().int(),
    messages: z.array(z.object({ seq: z.number().int(), role: z.enum(['user', 'assistant']), content: z.string() }).passthrough()),
    pendingPrompts: z.array(z.number()),
    pendingAudio: z.array(z.number()),
    // Absent in snapshots written before the state was bounded: counted from their transcript.
    prompts: z.number().int().nonnegative().optional(),
    replies: z.number().int().nonnegative().optional(),
  }).passthrough(),
});

/**
 * Parses a stored snapshot, written by this version or an earlier one (upcast: see
 * upcastState; its messages are cut to what recovery keeps when it folds on it); anything
 * unreadable or self-contradictory is CorruptSnapshot.
 */
export function parseSnapshot(conversationId: string, text: string): Snapshot {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CorruptSnapshot(`snapshot of ${conversationId} is not JSON`);
  }
  const parsed = SnapshotShape.safeParse(json);
  if (!parsed.success) throw new CorruptSnapshot(`snapshot of ${conversationId}: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
  const s = parsed.data as unknown as Omit<Snapshot, 'state'> & { state: StoredStateAnyVersion };
  if (s.conversationId !== conversationId || s.state.conversationId !== conversationId || s.state.seq !== s.seq) {
    throw new CorruptSnapshot(`snapshot of ${conversationId} contradicts itself (ids or seq differ)`);
  }
  return { ...s, state: upcastState(s.state, Infinity) };
}
