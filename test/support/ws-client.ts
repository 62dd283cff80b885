import WebSocket from 'ws';

export type Frame = Record<string, unknown> & { type?: string };

/** A WebSocket test client that keeps every frame it receives. */
export async function connect(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(url, { headers });
  const frames: Frame[] = [];
  let closed: { code: number; reason: string } | null = null;
  // Whoever waits in next() is woken by the next frame or the close, not by polling (a
  // poll would add its interval to every latency a benchmark measures).
  const waiting = new Set<() => void>();
  const woken = () => {
    for (const w of [...waiting]) w();
  };
  ws.on('message', (data, isBinary) => {
    if (!isBinary) frames.push(JSON.parse(data.toString()));
    woken();
  });
  ws.on('close', (code, reason) => {
    closed = { code, reason: reason.toString() };
    woken();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let cursor = 0;
  return {
    ws,
    frames,
    closed: () => closed,
    send(frame: unknown) {
      ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    },
    /** The next frame (after those already taken) that matches; earlier non-matching ones are skipped. */
    async next(match: (f: Frame) => boolean = () => true, ms = 15_000): Promise<Frame> {
      const end = Date.now() + ms;
      for (;;) {
        for (; cursor < frames.length; cursor++) {
          if (match(frames[cursor]!)) return frames[cursor++]!;
        }
        if (closed) throw new Error(`socket closed (${(closed as { code: number }).code}) before the frame came; got ${JSON.stringify(frames.slice(-5))}`);
        const left = end - Date.now();
        if (left <= 0) throw new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(frames.slice(-5))}`);
        await new Promise<void>((r) => {
          const wake = () => {
            clearTimeout(timer);
            waiting.delete(wake);
            r();
          };
          const timer = setTimeout(wake, left);
          waiting.add(wake);
        });
      }
    },
    close() {
      ws.close();
    },
  };
}

/** Sends bytes as an utterance: audio.start (with `start`: the twin, the format…), binary frames of `chunk` bytes, audio.end. */
export function speak(c: Awaited<ReturnType<typeof connect>>, bytes: Uint8Array, start: Record<string, unknown>, chunk = 8192): void {
  c.send({ type: 'audio.start', format: 'wav', ...start });
  // Copies: the ws client masks what it sends in place.
  for (let at = 0; at < bytes.byteLength; at += chunk) c.ws.send(Buffer.from(bytes.subarray(at, at + chunk)));
  c.send({ type: 'audio.end' });
}
