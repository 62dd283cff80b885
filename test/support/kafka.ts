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

/** A Kafka event log on the client under test. */
export function kafkaLog(options: KafkaLogOptions): EventLog {
  return KAFKA_CLIENT === 'kafkajs' ? createKafkaLog(options) : createPlatformaticLog(options);
}
