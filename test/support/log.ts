// Reading what the real Kafka log holds, as a test checks it after the processes wrote it.
import { readConversation } from '../../cli/read-conversation.ts';
import { kafkaLog } from './kafka.ts';
import { KAFKA_BROKERS } from './env.ts';

/** One conversation's events on the Kafka log in `namespace`, read with a log client of the test's own. */
export async function conversationOnKafka(namespace: string, conversationId: string, partitions = 12): ReturnType<typeof readConversation> {
  const log = kafkaLog({ brokers: KAFKA_BROKERS, partitions, namespace });
  try {
    return await readConversation(log, conversationId);
  } finally {
    await log.close();
  }
}
