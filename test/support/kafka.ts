// The Kafka client the tests' own log readers and writers use: the one the gemello
// processes under test run on (GEMELLO_KAFKA_CLIENT, inherited by them), so a run with
// GEMELLO_KAFKA_CLIENT=kafkajs exercises kafkajs end to end.
import { DEFAULT_KAFKA_CLIENT } from '../../log/kafka-client.ts';
import type { KafkaClient } from '../../log/kafka-client.ts';
import { createKafkaLog } from '../../log/kafka.ts';
import type { KafkaLogOptions } from '../../log/kafka-options.ts';
import { createPlatformaticLog } from '../../log/platformatic.ts';
import type { EventLog } from '../../log/port.ts';

export const KAFKA_CLIENT = (process.env.GEMELLO_KAFKA_CLIENT || DEFAULT_KAFKA_CLIENT) as KafkaClient;

/**
 * Both clients, the one under test first: a file whose private brokers cost seconds to start
 * (broker-outage, kafka-cluster) runs its tests on each over the same brokers.
 */
export const BOTH_CLIENTS: KafkaClient[] = [KAFKA_CLIENT, KAFKA_CLIENT === 'kafkajs' ? 'platformatic' : 'kafkajs'];

/** A Kafka event log on the client under test (or the one named). */
export function kafkaLog(options: KafkaLogOptions, client: KafkaClient = KAFKA_CLIENT): EventLog {
  return client === 'kafkajs' ? createKafkaLog(options) : createPlatformaticLog(options);
}
