import { decodeEvents } from '../events/codec.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { LoggedEvent } from '../events/schemas.ts';
import { partitionFor } from '../log/partition.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { Progress } from './progress.ts';

/** Every event of one conversation, read from its partition of the log (the truth); content whose key is gone reads as erased. */
export async function readConversation(log: EventLog, conversationId: string, progress?: Progress, keys?: KeyStore | null): Promise<LoggedEvent[]> {
  const partition = partitionFor(conversationId, log.partitions);
  const end = (await log.endOffsets(TOPICS.events))[partition] ?? 0;
  progress?.start(`scanning partition ${partition}`, end);
  const events: LoggedEvent[] = [];
  await log.read(TOPICS.events, partition, 0, async (records) => {
    events.push(...await decodeEvents(records.filter((r) => r.key === conversationId), keys));
    progress?.advance(records.length);
  });
  progress?.done();
  return events;
}
