import type { EventLog } from '../log/port.ts';
import { UnknownTopic } from '../log/port.ts';

/** The log with `endOffsets` in place of its own, reads included (they ask for the end when not given it). */
function withEnds(log: EventLog, endOffsets: (topic: string) => Promise<number[]>): EventLog {
  return {
    ...log,
    endOffsets,
    read: async (topic, partition, from, handle, end) => log.read(topic, partition, from, handle, end ?? (await endOffsets(topic))[partition]),
  };
}

/**
 * The log as a command that reads it sees it: a topic the broker does not have reads as empty
 * (nothing was ever written under this namespace), and `note` is told once per topic, so the
 * command answers "no events" with the reason instead of failing with a client's stack trace.
 */
export function readingUnwritten(log: EventLog, note: (topicOnBroker: string) => void): EventLog {
  // Asked once: a broker takes seconds to say a topic is not there (its clients retry first).
  const unwritten = new Set<string>();
  const none = () => new Array<number>(log.partitions).fill(0);
  return withEnds(log, async (topic) => {
    if (unwritten.has(topic)) return none();
    try {
      return await log.endOffsets(topic);
    } catch (err) {
      if (!(err instanceof UnknownTopic)) throw err;
      unwritten.add(topic);
      note(err.topic);
      return none();
    }
  });
}

/** The log as a command that rebuilds from it sees it: a topic the broker does not have stops the command with `message` (bad_config: one line). */
export function refusingUnwritten(log: EventLog, message: (topicOnBroker: string) => string): EventLog {
  return withEnds(log, async (topic) => {
    try {
      return await log.endOffsets(topic);
    } catch (err) {
      if (err instanceof UnknownTopic) throw Object.assign(new Error(message(err.topic)), { code: 'bad_config' });
      throw err;
    }
  });
}
