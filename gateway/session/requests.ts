import { randomUUID } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import type { ClientCommand } from '../../actors/commands.ts';
import { confirmedDataProblem } from '../../actors/twins.ts';
import { KeyDestroyed } from '../../sealing/keys.ts';
import { ERROR_CODES } from '../protocol.ts';
import type { ConfirmFrame, PromptFrame, StopFrame } from '../protocol.ts';
import { echo, MAX_OWN_COMMANDS } from './context.ts';
import type { SessionState } from './context.ts';
import { follow } from './follow.ts';

/** The envelope fields of a command this socket sends. */
export const meta = (s: SessionState, conversationId: string, requestId: string | undefined) => ({
  commandId: randomUUID(),
  conversationId,
  correlationId: requestId ?? null,
  principal: s.principal,
  traceparent: null,
  issuedAt: new Date().toISOString(),
});

/**
 * Publishes a command as this socket's own: its answers (events it causes, notices) come back to
 * it. `inTurn`: the caller already holds the conversation's turn (inOrder), so it is sent at once.
 */
export async function publish(s: SessionState, cmd: ClientCommand, twinId: string | null = null, o: { inTurn?: boolean } = {}): Promise<void> {
  s.mine.set(cmd.commandId, { twinId, conversationId: cmd.conversationId });
  if (s.mine.size > MAX_OWN_COMMANDS) s.mine.delete(s.mine.keys().next().value!);
  // The frame's span (ws.receive) gets the ids a trace reader searches by.
  trace.getActiveSpan()?.setAttributes({ 'conversation.id': cmd.conversationId, ...(twinId ? { 'twin.id': twinId } : {}) });
  try {
    await (o.inTurn ? s.deps.commands.publish(cmd) : inOrder(s, cmd.conversationId, () => s.deps.commands.publish(cmd)));
  } catch (err) {
    // Not on the log: nothing will answer it (and a conversation it kept followed can be let go).
    s.mine.delete(cmd.commandId);
    if (!(err instanceof KeyDestroyed)) throw err;
    if (twinId && s.byTwin.get(twinId) === cmd.conversationId) s.byTwin.delete(twinId);
    const twin = cmd.type === 'SubmitPrompt' || cmd.type === 'ReportSpeechFailure' ? { digitalTwinId: cmd.data.twin.id, digitalTwinName: cmd.data.twin.name } : {};
    s.out.error('conversation_erased', ERROR_CODES.conversation_erased, { ...twin, conversationId: cmd.conversationId, ...echo(cmd.correlationId) });
    return;
  }
  s.m.commands.inc({ type: cmd.type });
  if (cmd.type === 'SubmitPrompt') watchPrompt(s, cmd);
}

/**
 * Runs `send` once the socket's previous command to the conversation is on the log: a
 * conversation's first command waits for its new key, and the prompt sent right after it
 * must not overtake it.
 */
export async function inOrder<T>(s: SessionState, conversationId: string, send: () => Promise<T>): Promise<T> {
  const before = s.sending.get(conversationId);
  const sent = (before ? before.then(send, send) : send());
  const tail = sent.catch(() => {});
  s.sending.set(conversationId, tail);
  try {
    return await sent;
  } finally {
    if (s.sending.get(conversationId) === tail) s.sending.delete(conversationId);
  }
}

/**
 * Never silence: a prompt that no actor host took up (no PromptReceived) within
 * `acceptWithinMs`, or that was taken up but whose reply has not come while the log does not
 * answer, gets an `unavailable` error. It is in the log, and is still answered once the log
 * and the hosts are back. A slow model alone is not an outage: its own timeout answers.
 */
function watchPrompt(s: SessionState, cmd: Extract<ClientCommand, { type: 'SubmitPrompt' }>): void {
  const timer = setTimeout(async () => {
    if (s.out.closed) return;
    const accepted = !s.mine.has(cmd.commandId);
    if (accepted) {
      const f = s.followed.get(cmd.conversationId);
      const owed = cmd.correlationId !== null && f !== undefined && [...f.requests.values()].includes(cmd.correlationId);
      if (!owed) return;
      const logDown = await Promise.race([s.deps.log.ping().then(() => false, () => true), new Promise<boolean>((r) => setTimeout(() => r(true), 1_000))]);
      if (!logDown || s.out.closed) return;
    }
    const twin = { digitalTwinId: cmd.data.twin.id, digitalTwinName: cmd.data.twin.name };
    const why = accepted ? 'the log does not answer, so its reply cannot be recorded yet' : `no actor host took it up within ${Math.round(s.deps.limits.acceptWithinMs / 1000)} s (the log or the actor hosts are unreachable)`;
    s.out.error('unavailable', `${why}; the prompt is in the log and will be answered once they are back`, { ...twin, conversationId: cmd.conversationId, ...echo(cmd.correlationId) });
  }, s.deps.limits.acceptWithinMs);
  timer.unref?.();
}

/** A prompt frame (the seed's, or typed): the conversation named, or the socket's one with this twin, or a new one. */
export async function prompt(s: SessionState, frame: PromptFrame): Promise<void> {
  const twin = s.deps.catalog.find(frame.digitalTwinId, frame.digitalTwinName);
  if (!twin) {
    s.out.error('twin_not_found', 'Digital twin not found', { digitalTwinId: frame.digitalTwinId, digitalTwinName: frame.digitalTwinName, ...echo(frame.requestId) });
    return;
  }
  const conversationId = conversationFor(s, twin, frame);
  // Streamed only when this socket shows live text (it asked, now or before and not taken back, or resumed):
  // a seed client's reply is asked of the model in one piece.
  const stream = s.followed.get(conversationId)?.stream ?? false;
  await publish(s, { ...meta(s, conversationId, frame.requestId), type: 'SubmitPrompt', data: { twin: { id: twin.id, name: twin.name }, text: frame.prompt, stream } }, twin.id);
}

/**
 * The conversation a prompt (typed or spoken) goes to, followed by this socket: the one
 * named, or the socket's one with this twin, or a new one.
 */
export function conversationFor(s: SessionState, twin: { id: string; name: string }, frame: { conversationId?: string | undefined; stream?: boolean | undefined }): string {
  // Without a conversationId, the socket keeps one conversation per twin.
  const minted = !frame.conversationId && !s.byTwin.has(twin.id);
  const conversationId = frame.conversationId ?? s.byTwin.get(twin.id) ?? randomUUID();
  s.byTwin.set(twin.id, conversationId);
  // A conversation this socket named itself (a fresh uuid) is its own from the start.
  const f = follow(s, conversationId, { id: twin.id, name: twin.name }, s.principal === null || minted);
  // The latest frame that says decides: `"stream": false` goes back to whole replies.
  if (frame.stream !== undefined) f.stream = frame.stream;
  return conversationId;
}

/** A confirm frame: the data checked against the twin's fields, then ConfirmData. */
export async function confirm(s: SessionState, frame: ConfirmFrame): Promise<void> {
  const f = follow(s, frame.conversationId, null);
  // The twin's declared fields say what may be confirmed: refused here at once when this socket
  // knows the conversation's twin; the actor host checks it in any case.
  // Without data the proposals are confirmed; they were checked against the fields when the model made them.
  const twin = f.twin ? s.deps.catalog.find(f.twin.id, undefined) : undefined;
  const problem = twin && frame.data ? confirmedDataProblem(twin.fields, frame.data) : null;
  if (problem) return void s.out.error('invalid_data', problem, { conversationId: frame.conversationId, ...echo(frame.requestId) });
  await publish(s, { ...meta(s, frame.conversationId, frame.requestId), type: 'ConfirmData', data: { data: (frame.data ?? {}) as Record<string, unknown>, ...(frame.proposalSeq !== undefined ? { proposalSeq: frame.proposalSeq } : {}) } });
}

/** A stop frame: the conversation's actor host cancels the reply in flight (or trims the last one to heardChars). */
export async function stop(s: SessionState, frame: StopFrame): Promise<void> {
  follow(s, frame.conversationId, null);
  await publish(s, { ...meta(s, frame.conversationId, frame.requestId), type: 'StopReply', data: { heardChars: frame.heardChars ?? null } });
}
