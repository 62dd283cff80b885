import { pendingMigrations } from '../projections/migrate.ts';
import { claimReadModel } from '../projections/log-identity.ts';
import { within } from '../runtime/deadline.ts';
import { modelEndpoint, speechChoice } from '../models/select.ts';
import { TOPICS, UnknownTopic } from '../log/port.ts';
import { eventsRetentionFix, eventsRetentionProblem } from '../log/retention.ts';
import type { Backends } from '../runtime/wire.ts';
import { topicOnBroker } from '../runtime/config.ts';
import type { Config } from '../runtime/config.ts';

export type Check = { name: string; ok: boolean; detail: string; fix?: string };


/** Checks each backend the configuration names and says what to do about what fails. */
export async function doctor(config: Config, b: Backends): Promise<Check[]> {
  const checks: Check[] = [];
  const eventsTopic = topicOnBroker(config, TOPICS.events);
  /** Whether the events topic is there (a namespace nothing was written under has none yet). */
  let made = false;
  /** The log's end offset of each events partition, once read. */
  let ends: number[] = [];
  const check = async (name: string, fix: string, run: () => Promise<string>) => {
    try {
      checks.push({ name, ok: true, detail: await within(run(), 5000) });
    } catch (err) {
      checks.push({ name, ok: false, detail: (err as Error).message, fix });
    }
  };
  await check(`event log (${b.describe['event log']})`, config.kafkaBrokers ? 'start Kafka: npm run infra:up (or docker compose -f infra/docker-compose.yml up -d kafka); check KAFKA_BROKERS' : `check that ${config.dataDir} is writable`, async () => {
    await b.log.ping();
    const found = await b.log.endOffsets(TOPICS.events).catch((err: unknown) => {
      if (err instanceof UnknownTopic) return null;
      throw err;
    });
    if (!found) return `no topic ${eventsTopic} yet: the first npm start makes it (none was ever written under this namespace: check GEMELLO_NAMESPACE if you expected conversations)`;
    made = true;
    ends = found;
    return `${eventsTopic}: ${ends.length} partitions, ${ends.reduce((x, y) => x + y, 0)} records`;
  });
  // The start refuses a count that is not the topic's (records would go to the wrong partitions), and so does
  // doctor: on a topic that is there, ensureTopics only checks it.
  if (made) await check('event log partitions', 'set GEMELLO_PARTITIONS to the partition count of the topics (it is fixed when they are made)', async () => {
    await b.log.ensureTopics([TOPICS.events]);
    return `GEMELLO_PARTITIONS=${config.partitions}, as ${eventsTopic} has`;
  });
  // Only when it answers: whether it keeps what it is the only copy of.
  if (made && b.log.retentionOf) await check('event log retention', eventsRetentionFix(eventsTopic), async () => {
    const problem = await eventsRetentionProblem(b.log, eventsTopic);
    if (problem) throw new Error(problem);
    return `${eventsTopic} keeps every record (retention.ms=-1, retention.bytes=-1)`;
  });
  await check(`read models (${b.describe['read models']})`, config.databaseUrl ? 'start PostgreSQL (npm run infra:up) and check DATABASE_URL and DATABASE_SCHEMA; then gemello migrate' : 'gemello migrate', async () => {
    await b.db.ping();
    const { applied, pending } = await pendingMigrations(b.db);
    if (pending.length) throw new Error(`${pending.length} migrations not applied: ${pending.join(', ')}${applied ? ' (doctor changes no schema)' : ''}`);
    return `${applied} migrations applied`;
  });
  // Only when they answer: what they were built from.
  if (checks.at(-1)!.ok) await check('read models\' log', 'give this log read models of its own (DATABASE_SCHEMA, another database), or rebuild these from it: gemello replay --projection readmodel --restart', async () => {
    await claimReadModel(b.db, b.identity, b.describe['read models']!, { claim: false });
    const [row] = await b.db.query<{ log: string }>('SELECT log FROM log_identity WHERE id = 1');
    return row ? `built from ${b.identity.where}` : `not claimed by any log yet: the first gemello process that builds them claims them for ${b.identity.where}`;
  });
  // How far the read model is behind the log: a lost one (a dropped schema, a deleted directory) holds nothing of it.
  if (made && checks.at(-1)!.ok) await check('read model progress', 'start the projections role (npm start runs it), or rebuild the read model now: gemello restore', async () => {
    const rows = await b.db.query<{ partition: number; next_offset: number }>('SELECT partition, next_offset FROM projection_checkpoints WHERE projection = $1', ['readmodel']);
    const at = new Map(rows.map((r) => [Number(r.partition), Number(r.next_offset)]));
    const total = ends.reduce((x, y) => x + y, 0);
    const behind = ends.reduce((n, end, p) => n + Math.max(0, end - (at.get(p) ?? 0)), 0);
    if (total > 0 && behind === total) throw new Error(`the read model holds none of the log's ${total} records (lost, or never projected)`);
    return behind ? `${behind} of the log's ${total} records not projected yet (the projections role catches up while it runs)` : `every one of the log's ${total} records projected`;
  });
  await check(`snapshots (${b.describe.snapshots})`, 'start Redis (npm run infra:up) and check REDIS_URL', async () => {
    await b.snapshots.ping();
    return 'answers';
  });
  const models = config.models;
  if (models.apiKey) checks.push({ name: 'model', ok: true, detail: `OpenAI-compatible at ${modelEndpoint(models)} (not called by doctor)` });
  else checks.push({ name: 'model', ok: true, detail: 'offline provider (set OPENAI_API_KEY for real replies)' });
  // As the roles choose it (models/select.ts).
  const speech = speechChoice(models);
  if (speech === 'off') checks.push({ name: 'speech', ok: true, detail: 'off' });
  else if (speech === 'openai') checks.push({ name: 'speech', ok: true, detail: 'OpenAI speech' });
  else if (speech === 'espeak') checks.push({ name: 'speech', ok: true, detail: 'espeak-ng' });
  else checks.push({ name: 'speech', ok: false, detail: 'no espeak-ng on PATH: replies get AudioFailed', fix: 'apt-get install espeak-ng, set OPENAI_API_KEY, or GEMELLO_SPEECH=off' });
  return checks;
}
