import { z } from 'zod';
import { CorruptSnapshot } from '../../actors/ports.ts';
import type { Snapshot } from '../../actors/ports.ts';

const SnapshotShape = z.object({
  conversationId: z.string(),
  seq: z.number().int().nonnegative(),
  eventId: z.string().nullable(),
  position: z.object({ partition: z.number().int().nonnegative(), offset: z.number().int().nonnegative() }),
  state: z.object({ conversationId: z.string(), seq: z.number().int(), messages: z.array(z.unknown()), pendingPrompts: z.array(z.number()) }).passthrough(),
});

/** Parses a stored snapshot; anything unreadable or self-contradictory is CorruptSnapshot. */
export function parseSnapshot(conversationId: string, text: string): Snapshot {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CorruptSnapshot(`snapshot of ${conversationId} is not JSON`);
  }
  const parsed = SnapshotShape.safeParse(json);
  if (!parsed.success) throw new CorruptSnapshot(`snapshot of ${conversationId}: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
  const s = parsed.data as unknown as Snapshot;
  if (s.conversationId !== conversationId || s.state.conversationId !== conversationId || s.state.seq !== s.seq) {
    throw new CorruptSnapshot(`snapshot of ${conversationId} contradicts itself (ids or seq differ)`);
  }
  return s;
}
