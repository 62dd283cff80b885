/** What the broker itself says about a topic, for tests that check settings gemello asked for. */
import { logLevel } from 'kafkajs';
import { newKafka } from '../../log/kafkajs-request-queue.ts';
import { KAFKA_BROKERS } from './env.ts';

/** The topic's settings (its own, not the broker's defaults), as the broker has them. */
export async function topicConfig(topic: string): Promise<Record<string, string>> {
  const admin = newKafka({ brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const d = await admin.describeConfigs({ resources: [{ type: 2, name: topic }], includeSynonyms: false });
    return Object.fromEntries(d.resources[0]!.configEntries.map((e) => [e.configName, e.configValue]));
  } finally {
    await admin.disconnect();
  }
}

/** The broker's topics whose names start with `prefix` (a run's namespace). */
export async function topicsStartingWith(prefix: string): Promise<string[]> {
  const admin = newKafka({ brokers: KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).filter((t) => t.startsWith(prefix)).sort();
  } finally {
    await admin.disconnect();
  }
}
