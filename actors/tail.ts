import type { LoggedEvent } from '../events/schemas.ts';

/**
 * The events of one partition from `start` on, by conversation, in log order. Recovery
 * completes a snapshot or a projected state with it; it is trimmed as snapshots and
 * projections move past.
 */
export class TailIndex {
  start: number;
  private readonly byConversation = new Map<string, LoggedEvent[]>();
  private count = 0;

  constructor(start: number) {
    this.start = start;
  }

  add(event: LoggedEvent): void {
    let list = this.byConversation.get(event.conversationId);
    if (!list) this.byConversation.set(event.conversationId, (list = []));
    list.push(event);
    this.count++;
  }

  eventsOf(conversationId: string): readonly LoggedEvent[] {
    return this.byConversation.get(conversationId) ?? [];
  }

  /** Replaces each event of a conversation by `fn(event)` (an erasure scrubs their content). */
  update(conversationId: string, fn: (e: LoggedEvent) => LoggedEvent): void {
    const list = this.byConversation.get(conversationId);
    if (list) this.byConversation.set(conversationId, list.map(fn));
  }

  conversations(): IterableIterator<string> {
    return this.byConversation.keys();
  }

  /** Forgets events before `offset`. */
  trim(offset: number): void {
    if (offset <= this.start) return;
    this.start = offset;
    for (const [id, list] of this.byConversation) {
      const keep = list.findIndex((e) => e.position.offset >= offset);
      if (keep < 0) {
        this.byConversation.delete(id);
        this.count -= list.length;
      } else if (keep > 0) {
        this.byConversation.set(id, list.slice(keep));
        this.count -= keep;
      }
    }
  }

  /** Events held. */
  get size(): number {
    return this.count;
  }
}
