// The events topic must keep every record: it is the whole truth, and everything else is
// rebuilt from it from offset 0. gemello creates it so (FOREVER_TOPIC_CONFIG); a topic made
// before, or by an operator, may still carry the broker's default of 7 days.
import type { EventLog, TopicRetention } from './port.ts';
import { TOPICS } from './port.ts';

/** How to read a retention for a person. */
const describe = (r: TopicRetention) => [r.ms !== null ? `${Math.round((r.ms / 86_400_000) * 10) / 10} days` : null, r.bytes !== null ? `${r.bytes} bytes a partition` : null].filter(Boolean).join(' or ');

/** What is wrong with the events topic's retention (null: it keeps everything, or the log is not Kafka). */
export async function eventsRetentionProblem(log: EventLog, topicName: string): Promise<string | null> {
  if (!log.retentionOf) return null;
  const r = await log.retentionOf(TOPICS.events);
  if (r.ms === null && r.bytes === null) return null;
  return `${topicName} keeps records only ${describe(r)}: older events, the only copy of every conversation, will be deleted by the broker, and restore and replay will miss them`;
}

/** The fix for it, as a command an operator runs against the cluster. */
export const eventsRetentionFix = (topicName: string) =>
  `kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name ${topicName} --add-config retention.ms=-1,retention.bytes=-1`;
