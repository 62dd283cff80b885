import { SpanKind } from '@opentelemetry/api';
import type { Tracer } from '@opentelemetry/api';
import { decodeNotice, isEventRecord } from '../events/codec.ts';
import type { Notice } from '../events/codec.ts';
import type { KeyStore } from '../sealing/keys.ts';
import { partitionFor } from '../log/partition.ts';
import type { EventLog } from '../log/port.ts';
import { TOPICS } from '../log/port.ts';
import { inSpan, traceparentOf, tracerFor } from '../telemetry/trace.ts';
import { sealCommand } from '../sealing/commands.ts';
import type { ClientCommand, WireCommand } from './commands.ts';

/** Calls `notice` with every notice of a conversation from now on; returns the function that stops. */
export type NoticeSource = (conversationId: string, notice: (n: Notice) => void) => Promise<() => void>;

export type CommandClientDeps = {
  log: EventLog;
  /** Prompts and confirmed data go to the log sealed with the conversation's key (absent: in the clear). */
  keys?: KeyStore | null;
  /** Where answers are heard (the gateway's feed); absent: read from the conversation's partition of the log. */
  notices?: NoticeSource;
  tracer?: Tracer;
};

export type Published = { commandId: string; partition: number; offset: number };

/**
 * How a command reaches its conversation's actor host, for every sender (the gateway, the
 * eraser, the CLI): sealed with the conversation's key, on its partition of
 * `gemello.commands`, with its headers and a `kafka.produce` span whose context it carries.
 */
export function createCommandClient(deps: CommandClientDeps) {
  const { log } = deps;
  const tracer = deps.tracer ?? tracerFor('gemello-commands');
  const notices = deps.notices ?? logNotices(log);

  /**
   * The command as it goes on the log: its content sealed with the conversation's key (made
   * here for a new conversation), so erasing the conversation shreds the commands topic too.
   * Throws KeyDestroyed when the conversation was erased.
   */
  async function seal(cmd: ClientCommand): Promise<WireCommand> {
    if (!deps.keys || (cmd.type !== 'SubmitPrompt' && cmd.type !== 'ConfirmData')) return cmd;
    return sealCommand(cmd, await deps.keys.create(cmd.conversationId));
  }

  async function publish(plain: ClientCommand): Promise<Published> {
    const cmd = await seal(plain);
    const partition = partitionFor(cmd.conversationId, log.partitions);
    return inSpan(tracer, 'kafka.produce', { kind: SpanKind.PRODUCER, attributes: { 'conversation.id': cmd.conversationId, 'command.type': cmd.type } }, async (span, ctx) => {
      cmd.traceparent = traceparentOf(ctx) ?? cmd.traceparent;
      const headers: Record<string, string> = { 'command-type': cmd.type };
      if (cmd.traceparent) headers.traceparent = cmd.traceparent;
      const offset = await log.append(TOPICS.commands, partition, [{ key: cmd.conversationId, value: JSON.stringify(cmd), headers }]);
      span.setAttributes({ 'messaging.kafka.partition': partition, 'messaging.kafka.offset': offset });
      return { commandId: cmd.commandId, partition, offset };
    });
  }

  return {
    publish,
    /** Publishes the command and waits (at most `timeoutMs`) for the notice that answers it; null: no answer in time. */
    async ask(cmd: ClientCommand, timeoutMs: number): Promise<Notice | null> {
      let stop = () => {};
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        return await new Promise<Notice | null>((resolve, reject) => {
          // Listening first: the answer cannot arrive before we listen.
          notices(cmd.conversationId, (n) => n.commandId === cmd.commandId && resolve(n))
            .then((s) => {
              stop = s;
              timer = setTimeout(() => resolve(null), timeoutMs);
              return publish(cmd);
            })
            .catch(reject);
        });
      } finally {
        clearTimeout(timer);
        stop();
      }
    },
  };
}

export type CommandClient = ReturnType<typeof createCommandClient>;

/** Notices read from the conversation's partition of the events topic, from its end at the call (for a process without a feed). */
export function logNotices(log: EventLog, pollMs = 100): NoticeSource {
  return async (conversationId, notice) => {
    const partition = partitionFor(conversationId, log.partitions);
    let from = (await log.endOffsets(TOPICS.events))[partition] ?? 0;
    let stopped = false;
    void (async () => {
      while (!stopped) {
        from = await log.read(TOPICS.events, partition, from, (records) => {
          for (const r of records) if (!stopped && r.key === conversationId && !isEventRecord(r)) notice(decodeNotice(r));
        });
        if (!stopped) await new Promise((r) => setTimeout(r, pollMs));
      }
    })().catch(() => {});
    return () => void (stopped = true);
  };
}

/** An EraseConversation command: from a client through the API (its principal must own the conversation) or from the operator's CLI. */
export function eraseCommand(input: { conversationId: string; commandId: string; principal: string | null; by: string | null; via: 'api' | 'cli' | 'retention'; reason?: string | null; now: Date }): ClientCommand {
  return {
    type: 'EraseConversation',
    commandId: input.commandId,
    conversationId: input.conversationId,
    correlationId: null,
    principal: input.principal,
    traceparent: null,
    issuedAt: input.now.toISOString(),
    data: { by: input.by, via: input.via, reason: input.reason ?? null, asOperator: input.via !== 'api' },
  };
}
