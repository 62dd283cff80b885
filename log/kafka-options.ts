/** The settings both Kafka adapters (kafkajs, @platformatic/kafka) take. */
export type KafkaLogOptions = {
  brokers: string[];
  partitions: number;
  clientId?: string;
  /** Consumers' long-poll wait; lower means faster stop and pause at a small fetch cost. */
  maxWaitMs?: number;
  /** Prefix of every topic and group name, so independent deployments (or test runs) share a cluster. */
  namespace?: string;
  /** How long the group waits for a silent member before giving its partitions to others (failover time). */
  sessionTimeoutMs?: number;
};

/** The Kafka client library an event log runs on. */
export type KafkaClient = 'kafkajs' | 'platformatic';
