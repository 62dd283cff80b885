// A TCP proxy in front of Postgres that can play an outage, so a test can stop "the
// database" without stopping the shared server that other suites use meanwhile.
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

/**
 * Listens on a free port of 127.0.0.1 and forwards to `target`. `down()` cuts every
 * connection and stops listening (clients get ECONNREFUSED, as from a stopped server);
 * `up()` listens again on the same port; `cut()` cuts every connection but keeps listening;
 * `close()` cuts what is left and stops.
 */
export async function pgProxy(target: URL) {
  const sockets = new Set<Socket>();
  type Side = 'client' | 'server';
  let watch: { from: Side; match: (chunk: Buffer) => boolean; forward: boolean; done: () => void } | null = null;
  let cutAtReady = 0;
  let downAfterCut = false;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    if (cutAtReady > 0) {
      // Cut as soon as the server has said it is ready for the first query (after startup).
      cutAtReady--;
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        client.write(chunk);
        const n = chunk.length;
        if (n >= 6 && chunk[n - 6] === 0x5a && chunk.readInt32BE(n - 5) === 5) {
          client.end();
          upstream.destroy();
          // And refuses connections from here (as `down()`), should the test have asked so.
          if (downAfterCut && server.listening) server.close();
        }
      });
    } else {
      // Chunk by chunk, so a cut can come at a moment of the protocol (cutOn).
      const relay = (from: Socket, to: Socket, side: Side) =>
        from.on('data', (chunk: Buffer) => {
          const w = watch;
          if (w?.from === side && w.match(chunk)) {
            watch = null;
            if (w.forward) to.write(chunk);
            client.destroy();
            upstream.destroy();
            w.done();
            return;
          }
          to.write(chunk);
        });
      relay(client, upstream, 'client');
      relay(upstream, client, 'server');
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const url = new URL(target);
  url.host = `127.0.0.1:${port}`;
  return {
    /** The target's URL with the proxy's address. */
    url: url.toString(),
    async down() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    up: () => new Promise<void>((r) => server.listen(port, '127.0.0.1', r)),
    /**
     * The next `n` connections are cut right after the server's first ReadyForQuery (at the
     * end of their startup); with `down`, the proxy stops listening then too (up() again).
     */
    cutAfterStartup(n: number, { down = false } = {}) {
      cutAtReady = n;
      downAfterCut = down;
    },
    /**
     * Cuts the first connection (open now or later) on which a chunk sent by `from` matches,
     * that chunk passed on first with `forward`; resolves when it has. One at a time.
     */
    cutOn(from: Side, match: (chunk: Buffer) => boolean, { forward = false } = {}): Promise<void> {
      return new Promise((done) => (watch = { from, match, forward, done }));
    },
    /** Cuts every connection open now and goes on listening (a server restart seen from the client). */
    cut() {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => (server.listening ? server.close(() => r()) : r()));
    },
  };
}
