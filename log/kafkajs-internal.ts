// kafkajs' internal files (no types, not re-exported), for the workarounds that reach into
// them (log/kafkajs-request-queue.ts, log/kafkajs-produce.ts).
import { createRequire } from 'node:module';
import { Kafka } from 'kafkajs';

/**
 * A `require` for kafkajs' own files when the kafkajs they belong to is the one gemello imports
 * (its module instances are those its clients use); null for another copy, left as it is.
 */
export function kafkajsInternals(): NodeJS.Require | null {
  const require = createRequire(import.meta.url);
  return (require('kafkajs') as { Kafka?: unknown }).Kafka === Kafka ? require : null;
}
