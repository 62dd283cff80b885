import { SpanKind } from '@opentelemetry/api';
import { inSpan, tracerFor } from '../telemetry/trace.ts';
import { ERROR_CODES, parseFrame, peekRequestId } from './protocol.ts';
import { echo } from './session/context.ts';
import type { SessionDeps, SessionMetrics, SessionState, SocketPort } from './session/context.ts';
import { createOutbox } from './session/outbox.ts';
import { createRateLimit } from './session/rate.ts';
import { confirm, prompt, stop } from './session/requests.ts';
import { resume } from './session/resume.ts';
import { audioBytes, audioEnd, audioStart, closeVoice, refuseIfUtterance } from './session/voice.ts';

export { DEFAULT_LIMITS, sessionMetrics } from './session/context.ts';
export type { SessionDeps, SessionLimits, SocketPort } from './session/context.ts';

const tracer = tracerFor('gemello-gateway');

/**
 * One WebSocket connection: validates frames, turns them into commands on the log, and
 * turns the events of the conversations it follows back into frames. The parts live in
 * gateway/session/: output, rate limit, following (events → frames), requests, resume.
 */
export function createSession(deps: SessionDeps, socket: SocketPort, principal: string | null, m: SessionMetrics) {
  const out = createOutbox(socket, deps.limits.maxBufferedBytes, m);
  const s: SessionState = { deps, m, principal, out, followed: new Map(), byTwin: new Map(), mine: new Map(), sending: new Map(), typed: false, utterance: null, transcribing: 0 };
  const allow = createRateLimit(deps.limits.ratePerSec, deps.limits.burst);
  let lastActivity = Date.now();

  async function handleText(text: string): Promise<void> {
    lastActivity = Date.now();
    m.framesIn.inc();
    if (!allow()) {
      out.error('rate_limited', ERROR_CODES.rate_limited, echo(peekRequestId(text)));
      refuseIfUtterance(s, text);
      return;
    }
    const parsed = parseFrame(text);
    if (!parsed.ok) {
      out.error(parsed.code, parsed.error, echo(parsed.requestId));
      return;
    }
    const frame = parsed.frame;
    if (frame.type !== undefined || ('stream' in frame && frame.stream)) s.typed = true;
    try {
      await inSpan(tracer, 'ws.receive', { kind: SpanKind.SERVER, attributes: { 'ws.frame.type': frame.type ?? 'prompt', 'twin.id': 'digitalTwinId' in frame ? (frame.digitalTwinId ?? '') : '' } }, async () => {
        if (frame.type === 'confirm') await confirm(s, frame);
        else if (frame.type === 'resume') await resume(s, frame);
        else if (frame.type === 'stop') await stop(s, frame);
        else if (frame.type === 'audio.start') audioStart(s, frame);
        else if (frame.type === 'audio.end') await audioEnd(s, frame);
        else await prompt(s, frame);
      });
    } catch (err) {
      deps.logger.warn(`frame failed: ${(err as Error).message}`);
      out.error('unavailable', `could not hand the request to the log: ${(err as Error).message}`, echo(frame.requestId));
    }
  }

  return {
    /** Handles one text frame; never throws. */
    async onText(text: string): Promise<void> {
      try {
        await handleText(text);
      } catch (err) {
        deps.logger.error(`frame handling failed: ${(err as Error).message}`);
        out.error('internal', 'the gateway could not handle the frame');
      }
    },
    /** A binary frame: audio of the utterance being sent, else refused. */
    onBinary(bytes?: Uint8Array): void {
      lastActivity = Date.now();
      m.framesIn.inc();
      // An utterance's frames are bounded by its limits, not by the frame rate.
      if (bytes && audioBytes(s, bytes)) return;
      if (!allow()) return out.error('rate_limited', ERROR_CODES.rate_limited);
      out.error('binary_frame', ERROR_CODES.binary_frame);
    },
    onClose(): void {
      out.closed = true;
      closeVoice(s);
      for (const f of s.followed.values()) f.stop();
      s.followed.clear();
    },
    idleFor(now: number): number {
      return now - lastActivity;
    },
  };
}

export type Session = ReturnType<typeof createSession>;
