// Waits until the local Kafka broker answers a real admin request (not just an open port).
// Usage: node infra/kafka/wait.ts [broker=127.0.0.1:9092] [timeoutSeconds=90]; exit 0 when ready, 1 on timeout.
import kafkajs from 'kafkajs'; // CommonJS package: take the default export

const { Kafka, logLevel } = kafkajs;
const broker = process.argv[2] ?? `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;
const deadline = Date.now() + Number(process.argv[3] ?? 90) * 1000;

// No kafkajs retries: this loop does the retrying, so each attempt fails fast.
const kafka = new Kafka({ clientId: 'infra-wait', brokers: [broker], logLevel: logLevel.NOTHING, connectionTimeout: 1000, requestTimeout: 3000, retry: { retries: 0 } });

let lastError = 'no attempt';
while (Date.now() < deadline) {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    await admin.listTopics();
    await admin.disconnect();
    console.log(`kafka ready at ${broker} (cluster ${cluster.clusterId}, controller ${cluster.controller})`);
    process.exit(0);
  } catch (err) {
    lastError = err instanceof Error ? err.message : String(err);
    await admin.disconnect().catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
console.error(`kafka at ${broker} not ready in time: ${lastError}`);
process.exit(1);
