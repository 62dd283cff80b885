// The operator's CLI (cli/gemello.ts): `gemello <command>`; `gemello help` lists the commands.
import { readFileSync } from 'node:fs';
import { fold } from '../actors/state.ts';
import { migrate, pendingMigrations } from '../projections/migrate.ts';
import { ConfigError, loadConfig } from '../runtime/config.ts';
import { SecretFileError, withSecretFiles } from '../runtime/file-env.ts';
import { runNode } from '../runtime/node.ts';
import { createRuntime, openBackends } from '../runtime/wire.ts';
import type { Backends, Role, Runtime } from '../runtime/wire.ts';
import { createLogger } from '../telemetry/logger.ts';
import { createReadModelStateSource } from '../projections/state-source.ts';
import { doctor } from './doctor.ts';
import { eraseConversation } from './erase.ts';
import { readingUnwritten, refusingUnwritten } from './unwritten-topics.ts';
import { TOPICS } from '../log/port.ts';
import { retentionCommand } from './retention.ts';
import { createProgress } from './progress.ts';
import { verify, verifySummary } from './verify.ts';
import { restore } from './restore.ts';
import { rebuildSnapshots } from './snapshots.ts';
import { exitOnStartError } from '../runtime/fatal.ts';
import { claimReadModel } from '../projections/log-identity.ts';
import { explainUnreachable } from '../runtime/unreachable.ts';
import { readConversation } from './read-conversation.ts';
import { replay, replayUsage } from './replay.ts';
import { flowsCommand } from './flows.ts';
import { flagsProblem, numberFlag, parseArgs, UsageError } from './args.ts';
import { copied, plural } from './wording.ts';

const HELP = `gemello <command>

  serve [--roles a,b]        gateway, actor host and projections in one process (as npm start),
                             or only the roles named
  gateway | actors | projections
                             one role per process (scale each on its own)
  events <conversationId> [--json]
                             the conversation's events, read from the log
  state <conversationId> [--at <seq>]
                             the conversation's state folded from the log (as it was at <seq>)
  migrate                    apply the read-model migrations and move data keys of earlier
                             versions into the keys topic
  replay --projection <name> [--restart]
                             rebuild a projection (readmodel) from offset 0 into fresh tables
                             while the old ones serve, then switch; resumes after an interruption
  erase <conversationId> [--reason <text>] [--by <name>] [--timeout <seconds>]
                             erase the conversation's prompts, replies and confirmed data everywhere
                             (its actor host destroys its key); waits until done
  retention [--days <n>] [--dry-run]
                             list (--dry-run) or erase now the conversations with no event for
                             GEMELLO_RETENTION_DAYS (or <n>) days, as the gateways do hourly
  verify                     compare every snapshot and read-model row with the log; exit 1 on any mismatch
  snapshots rebuild          fold every conversation from the log and write its snapshot
  flows compile <file>       validate a flow definition (every error with its JSON path) and print
                             its task list and version; backends from GEMELLO_BACKENDS, webhooks
                             from GEMELLO_EMAIL_WEBHOOK / GEMELLO_SMS_WEBHOOK
  restore                    disaster recovery: rebuild the read model, the data-key cache, the kept
                             voice clips and the snapshots from Kafka alone (after losing PostgreSQL
                             and/or Redis)
  doctor                     check each backend and say what to fix
  help                       this text

Long work shows its progress on stderr when stderr is a terminal; --progress shows it anyway.
Backends come from the environment (KAFKA_BROKERS, DATABASE_URL, REDIS_URL, GEMELLO_DATA_DIR…);
see README.md.`;

/** Without Redis, snapshots are each serving process's own memory: a CLI process has none to write. */
const IN_PROCESS_SNAPSHOTS = 'snapshots: none written. Without REDIS_URL they are an in-process cache of each serving process (npm start writes its own as conversations are used, and recovers the others from the read model and the log); set REDIS_URL to keep them in Redis';

/** The command that writes the read models itself (the others read them, or the log; erasures are the host's). */
const WRITES_READ_MODEL = new Set(['replay']);
/** Commands that only look: a DATABASE_SCHEMA that does not exist is reported, not made. */
const LOOKS_ONLY = new Set(['doctor', 'events', 'state', 'verify']);

/**
 * What a command that only looks does to the read model's schema: one nothing was migrated
 * into yet gets its tables; one behind this gemello is left as it is (processes of the release
 * it belongs to may be running on it), with a note (doctor reports it as a check of its own).
 */
async function migrateIfNew(db: Backends['db'], command: string): Promise<void> {
  const { applied, pending } = await pendingMigrations(db);
  if (applied === 0) await migrate(db);
  else if (pending.length && command !== 'doctor') console.error(`note: the read model lacks ${pending.length} migrations of this gemello (${pending.join(', ')}); ${command} changes no schema: gemello migrate applies them`);
}

/** The commands that open the backends, with the words they need; bad usage is told before anything is opened. */
const USAGE: Record<string, { line: string; id?: boolean; sub?: string; flags?: string[] }> = {
  events: { line: 'events <conversationId> [--json]', id: true, flags: ['json'] },
  state: { line: 'state <conversationId> [--at <seq>]', id: true, flags: ['at'] },
  erase: { line: 'erase <conversationId> [--reason <text>] [--by <name>] [--timeout <seconds>]', id: true, flags: ['reason', 'by', 'timeout'] },
  snapshots: { line: 'snapshots rebuild', sub: 'rebuild' },
  verify: { line: 'verify' },
  retention: { line: 'retention [--days <n>] [--dry-run]', flags: ['days', 'dry-run'] },
  doctor: { line: 'doctor' },
  restore: { line: 'restore' },
  replay: { line: 'replay --projection <name> [--restart]', flags: ['projection', 'restart'] },
  migrate: { line: 'migrate' },
};

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const [command, ...rest] = args._;
  const roles: Record<string, Role[]> = { serve: ['gateway', 'actors', 'projections'], gateway: ['gateway'], actors: ['actors'], projections: ['projections'] };
  if (!command || command === 'help' || command === '-h' || args.flags.help) {
    console.log(HELP);
    return command || args.flags.help ? 0 : 2;
  }
  // Secrets mounted as files (NAME_FILE) become NAME before any role or command reads the environment.
  Object.assign(process.env, withSecretFiles(process.env, (path) => readFileSync(path, 'utf8')));
  if (roles[command]) {
    // Told before anything starts, as for every other command: a word too many, a flag it does not take (only serve takes --roles).
    const line = command === 'serve' ? 'serve [--roles gateway,actors,projections]' : command;
    if (rest.length) throw new UsageError(`"${rest[0]}" is one word too many\nusage: gemello ${line}`);
    const wrong = flagsProblem(args, command === 'serve' ? ['roles'] : []);
    if (wrong) throw new UsageError(`${wrong}\nusage: gemello ${line}`);
    const chosen = typeof args.flags.roles === 'string' ? (args.flags.roles.split(',') as Role[]) : roles[command];
    if (chosen.some((r) => !roles.serve!.includes(r))) throw new UsageError(`--roles takes a comma-separated list of ${roles.serve!.join(', ')}`);
    await runNode(chosen).catch(exitOnStartError);
    return -1; // keeps running
  }
  const config = loadConfig(process.env);
  if (command === 'flows') {
    const wrong = rest.length > 2 ? `"${rest[2]}" is one word too many` : flagsProblem(args, []);
    if (wrong) throw new UsageError(`${wrong}\nusage: gemello flows compile <file>`);
    return flowsCommand(rest, config);
  }
  // Before any backend is opened: a typo neither makes nor locks an embedded data directory.
  const usage = USAGE[command];
  if (!usage) throw new UsageError(`unknown command "${command}"\n\n${HELP}`);
  if ((usage.id && !rest[0]) || (usage.sub && rest[0] !== usage.sub)) throw new UsageError(`usage: gemello ${usage.line}`);
  const wordsTaken = usage.id || usage.sub ? 1 : 0;
  if (rest.length > wordsTaken) throw new UsageError(`"${rest[wordsTaken]}" is one word too many\nusage: gemello ${usage.line}`);
  const replayWrong = command === 'replay' ? replayUsage(args.flags) : null;
  if (replayWrong) throw new UsageError(replayWrong);
  const flagsWrong = flagsProblem(args, usage.flags ?? []);
  if (flagsWrong) throw new UsageError(`${flagsWrong}\nusage: gemello ${usage.line}`);
  const at = numberFlag(args, 'at', Infinity);
  const timeout = numberFlag(args, 'timeout', 30);
  const days = numberFlag(args, 'days', config.retentionDays);
  // Erasures are carried out by the conversation's actor host. An embedded data directory belongs to
  // this command while it runs, so no other process can be that host: the command runs one itself
  // (with the projections, which scrub the read model), as `npm start` would, and stops it after.
  const needsHost = command === 'erase' || (command === 'retention' && args.flags['dry-run'] !== true && days > 0);
  let runtime: Runtime | null = null;
  let backends: Backends;
  if (needsHost && (!config.kafkaBrokers || !config.databaseUrl)) {
    runtime = await createRuntime({ ...config, quiet: true }, ['actors', 'projections'], createLogger('gemello', true), {}, `gemello ${command}`);
    await runtime.start();
    backends = runtime.backends;
  } else backends = await openBackends(config, createLogger('gemello', true), `gemello ${command}`, { lookOnly: LOOKS_ONLY.has(command) });
  // A namespace nothing was written under reads as an empty log, with a note that says why (doctor says it itself).
  // A rebuild from such a log (replay, restore) would replace the read models with empty ones: refused instead.
  const unwritten = (topic: string) => `the broker has no topic ${topic}: nothing was ever written under ${config.namespace ? `GEMELLO_NAMESPACE=${config.namespace}` : 'the default namespace'} (check GEMELLO_NAMESPACE and KAFKA_BROKERS)`;
  if (command === 'replay' || command === 'restore') {
    backends = { ...backends, log: refusingUnwritten(backends.log, (topic) => `${unwritten(topic)}; a rebuild from it would leave the read models empty, so nothing was changed`) };
    // Asked before anything is touched (a migration, a rebuild schema).
    await backends.log.endOffsets(TOPICS.events);
  } else if (command !== 'doctor') backends = { ...backends, log: readingUnwritten(backends.log, (topic) => console.error(`note: ${unwritten(topic)}; read as an empty log`)) };
  // The conversations' data keys: sealed content reads as "[erased]" once its key is destroyed.
  const keys = backends.keys;
  const progress = createProgress(process.stderr, process.stderr.isTTY === true || args.flags.progress === true);
  try {
    // The key cache first holds what the keys topic holds (after a lost database, everything).
    // Doctor reports each backend itself, the ones that do not answer included: what fails here is its to tell.
    if (command === 'doctor') await migrateIfNew(backends.db, command).catch(() => {});
    else if (LOOKS_ONLY.has(command)) await migrateIfNew(backends.db, command);
    else if (command !== 'migrate' && command !== 'restore') await migrate(backends.db);
    if (command !== 'doctor' && command !== 'migrate' && command !== 'restore') {
      // Read models of another log are refused, but for the rebuild that replaces them.
      // Only the commands that write them claim them; the others check that they are this log's.
      if (!(command === 'replay' && args.flags.restart === true)) await claimReadModel(backends.db, backends.identity, backends.describe['read models']!, { claim: WRITES_READ_MODEL.has(command) });
      await keys.sync();
    }
    switch (command) {
      case 'events': {
        const id = rest[0]!;
        const events = await readConversation(backends.log, id, progress, keys);
        if (args.flags.json) console.log(JSON.stringify(events, null, 2));
        else {
          if (!events.length) console.log(`no events for ${id}`);
          for (const e of events) {
            const summary = JSON.stringify(e.data);
            console.log(`${String(e.seq).padStart(4)}  ${e.occurredAt}  ${e.type.padEnd(19)} ${e.position.partition}/${String(e.position.offset).padEnd(7)} ${summary.length > 80 ? summary.slice(0, 77) + '...' : summary}`);
          }
        }
        return events.length ? 0 : 1;
      }
      case 'state': {
        const id = rest[0]!;
        const events = await readConversation(backends.log, id, progress, keys);
        if (!events.length) {
          console.error(`no events for ${id}`);
          return 1;
        }
        // The whole transcript: the actor's state keeps only the last messages, the log has them all.
        console.log(JSON.stringify(fold(id, events.filter((e) => e.seq <= at), undefined, Infinity), null, 2));
        const last = events.at(-1)!.seq;
        if (Number.isFinite(at) && at > last) console.error(`note: --at ${at} is past the conversation's last seq (${last}): this is its state now`);
        return 0;
      }
      case 'verify': {
        // A store that does not answer is not a mismatch per conversation: it is named once, with its fix.
        await backends.snapshots.ping();
        const readModel = createReadModelStateSource(backends.db, undefined, config.historyMessages);
        const r = await verify({ log: backends.log, snapshots: backends.snapshots, readModel, db: backends.db, progress, keys });
        for (const m of r.mismatches) console.log(`MISMATCH ${m.conversationId} ${m.where}: ${m.detail}`);
        console.log(verifySummary(r));
        return r.mismatches.length ? 1 : 0;
      }
      case 'snapshots': {
        if (!config.redisUrl) {
          console.log(IN_PROCESS_SNAPSHOTS);
          return 0;
        }
        const n = await rebuildSnapshots({ log: backends.log, snapshots: backends.snapshots, keys, progress, historyMessages: config.historyMessages });
        console.log(`${plural(n, 'snapshot')} written`);
        return 0;
      }
      case 'erase': {
        const id = rest[0]!;
        const by = typeof args.flags.by === 'string' ? args.flags.by : (process.env.USER ?? 'operator');
        const reason = typeof args.flags.reason === 'string' ? args.flags.reason : null;
        return await eraseConversation(id, { by, reason, timeoutMs: timeout * 1000 }, { log: backends.log, db: backends.db, snapshots: backends.snapshots, progress });
      }
      case 'retention': {
        return await retentionCommand({ days, dryRun: args.flags['dry-run'] === true }, { log: backends.log, db: backends.db });
      }
      case 'doctor': {
        const checks = await doctor(config, backends);
        for (const c of checks) console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ''}`);
        return checks.every((c) => c.ok) ? 0 : 1;
      }
      case 'restore':
      case 'replay': {
        // Ctrl-C stops between batches and keeps what was rebuilt; a second one exits at once.
        const abort = new AbortController();
        const onInt = () => {
          if (abort.signal.aborted) process.exit(130);
          console.error('\nstopping after the batches in flight (Ctrl-C again to quit now)');
          abort.abort();
        };
        process.on('SIGINT', onInt);
        process.on('SIGTERM', onInt);
        try {
          const deps = { log: backends.log, db: backends.db, snapshots: config.redisUrl ? backends.snapshots : null, keys, progress, keepVoice: config.voice.keep, historyMessages: config.historyMessages, signal: abort.signal, identity: backends.identity };
          return command === 'restore' ? await restore(deps) : await replay({ projection: args.flags.projection, restart: args.flags.restart }, deps);
        } finally {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onInt);
        }
      }
      case 'migrate': {
        const applied = await migrate(backends.db);
        console.log(applied.length ? `applied: ${applied.join(', ')}` : 'the read model is up to date');
        const synced = await keys.sync();
        console.log(`data keys: ${copied(synced, 'the keys topic', 'the key cache')}`);
        const moved = await keys.migrateLegacy((n) => process.stderr.write(`\rmoving data keys into the keys topic: ${n}`));
        if (moved) process.stderr.write('\n');
        console.log(moved ? `data keys: ${plural(moved, 'key')} moved into the keys topic (wrapped by the master key) and removed from conversation_keys` : 'data keys: none left to move');
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"\n\n${HELP}`);
    }
  } catch (err) {
    // A backend that does not answer is named with its fix, not left to a client library's stack trace.
    throw (err instanceof UsageError ? null : await explainUnreachable(config, backends)) ?? err;
  } finally {
    if (runtime) await runtime.stop();
    else await backends.close();
  }
}

/**
 * Exits once what was written to stdout is out: into a pipe, stdout is asynchronous, and an
 * exit right after a large write (`events --json` of a long conversation) cut it short.
 */
const exitAfterOutput = (code: number) => process.stdout.write('', () => process.exit(code));

try {
  const code = await main(process.argv.slice(2));
  if (code >= 0) exitAfterOutput(code);
} catch (err) {
  if (err instanceof UsageError || err instanceof ConfigError || err instanceof SecretFileError) {
    console.error(err.message);
    process.exit(2);
  }
  if (typeof (err as { code?: unknown })?.code === 'string') exitOnStartError(err);
  console.error(`gemello: ${(err as Error).message}`);
  process.exit(1);
}
