import { decodeEvents, isEventRecord } from '../events/codec.ts';
import type { KeyStore } from '../sealing/keys.ts';
import type { LoggedEvent } from '../events/schemas.ts';
import { partitionFor } from '../log/partition.ts';
import type { EventLog, LogRecord } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import type { Progress } from './progress.ts';

/** Reads the conversation's partition of the events topic from its start, with progress: each batch's records of the conversation to `take`. */
async function scanConversation(log: EventLog, conversationId: string, doing: string, take: (records: LogRecord[]) => void | Promise<void>, progress?: Progress): Promise<void> {
  const partition = partitionFor(conversationId, log.partitions);
  const end = (await log.endOffsets(TOPICS.events))[partition] ?? 0;
  progress?.start(`${doing} partition ${partition}`, end);
  await log.read(TOPICS.events, partition, 0, async (records) => {
    await take(records.filter((r) => r.key === conversationId));
    progress?.advance(records.length);
  });
  progress?.done();
}

/** Every event of one conversation, read from its partition of the log (the truth); content whose key is gone reads as erased. */
export async function readConversation(log: EventLog, conversationId: string, progress?: Progress, keys?: KeyStore | null): Promise<LoggedEvent[]> {
  const events: LoggedEvent[] = [];
  await scanConversation(log, conversationId, 'scanning', async (records) => void events.push(...await decodeEvents(records, keys)), progress);
  return events;
}

/** Whether the log holds any record of the conversation (the read model may be behind, or lost). */
export async function inLog(log: EventLog, conversationId: string, progress?: Progress): Promise<boolean> {
  let found = false;
  // Events only: a notice (a command of it refused, such as an erasure of an id never used) is no conversation.
  await scanConversation(log, conversationId, `looking for ${conversationId} in`, (records) => void (found ||= records.some(isEventRecord)), progress);
  return found;
}
