/**
 * Server-sent events, read incrementally: feed text as it arrives, get each event's data
 * (its `data:` lines joined by newlines) once its blank line has come. Lines may end in
 * CRLF, LF or CR (a CR at the end of a piece waits for the next, which may start with LF).
 * Events without data (comments, keep-alives) are skipped.
 */
export function createSseReader(onData: (data: string) => void) {
  let buffered = '';
  /** The data lines of the event being read. */
  let data: string | null = null;
  return {
    push(piece: string): void {
      let text = buffered + piece;
      if (text.includes('\r')) {
        // Hold a trailing CR: it and a leading LF of the next piece are one line end.
        const held = text.endsWith('\r');
        text = text.slice(0, held ? -1 : undefined).replace(/\r\n?/g, '\n') + (held ? '\r' : '');
      }
      let at = 0;
      for (;;) {
        const nl = text.indexOf('\n', at);
        if (nl < 0) break;
        const line = text.slice(at, nl);
        at = nl + 1;
        if (line === '') {
          if (data !== null) {
            const d = data;
            data = null;
            onData(d);
          }
        } else if (line.startsWith('data:')) {
          const value = line.slice(line.charCodeAt(5) === 32 ? 6 : 5);
          data = data === null ? value : `${data}\n${value}`;
        }
      }
      buffered = text.slice(at);
    },
  };
}
