import type { ErrorCode } from '../protocol.ts';
import type { SessionMetrics, SocketPort } from './context.ts';

/** What a session sends to its socket: frames, and error frames with a code; a client that stops reading is closed instead of queued for. */
export function createOutbox(socket: SocketPort, maxBufferedBytes: number, m: SessionMetrics) {
  const out = {
    closed: false,
    send(frame: Record<string, unknown>): void {
      if (out.closed) return;
      if (socket.buffered() > maxBufferedBytes) {
        // The client does not read: stop queueing for it rather than grow without bound.
        out.closed = true;
        m.errors.inc({ code: 'slow_consumer' });
        socket.close(1008, 'slow consumer: too much unread output; reconnect and resume');
        return;
      }
      socket.send(JSON.stringify(frame));
      m.framesOut.inc();
    },
    error(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): void {
      m.errors.inc({ code });
      out.send({ type: 'error', ...extra, error: message, code });
    },
  };
  return out;
}

export type Outbox = ReturnType<typeof createOutbox>;
