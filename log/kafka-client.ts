import type { KafkaClient, KafkaLogOptions } from './kafka-options.ts';
import type { EventLog } from './port.ts';

export type { KafkaClient } from './kafka-options.ts';

/** The client a deployment runs on when GEMELLO_KAFKA_CLIENT is unset (the faster one in bench/kafka-clients.ts). */
export const DEFAULT_KAFKA_CLIENT: KafkaClient = 'platformatic';

/**
 * The Kafka event log on the client asked for. Loaded on demand, so a process (Deno too)
 * loads only the library it runs on.
 */
export async function createKafkaEventLog(client: KafkaClient, options: KafkaLogOptions): Promise<EventLog> {
  if (client === 'kafkajs') return (await import('./kafka.ts')).createKafkaLog(options);
  return (await import('./platformatic.ts')).createPlatformaticLog(options);
}
