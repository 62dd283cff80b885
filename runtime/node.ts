import type { IncomingMessage, Server } from 'node:http';
import { getPriority, setPriority } from 'node:os';
import type { Duplex } from 'node:stream';
import { serve } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { createApp } from '../gateway/app.ts';
import type { Who } from '../gateway/app.ts';
import { authOffNotice } from '../gateway/auth.ts';
import { MAX_PAYLOAD_BYTES } from '../gateway/protocol.ts';
import type { SocketPort } from '../gateway/session.ts';
import { createLogger } from '../telemetry/logger.ts';
import { startTelemetry } from '../telemetry/sdk.ts';
import { reportMemory } from '../telemetry/memory.ts';
import { loadConfig } from './config.ts';
import { createOpsApp } from './ops-app.ts';
import { listenError } from './listen-error.ts';
import { createRuntime } from './wire.ts';
import type { Role } from './wire.ts';
import { onParentGone } from './parent-watch.ts';

const ignore = () => {};

/** A session's view of a `ws` socket: one small object per socket, its methods shared. */
class WsPort implements SocketPort {
  readonly ws: WebSocket;
  constructor(ws: WebSocket) {
    this.ws = ws;
  }
  send(text: string): void {
    this.ws.send(text);
  }
  buffered(): number {
    return this.ws.bufferedAmount;
  }
  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }
}

/**
 * A process that only projects lowers its CPU priority: its work per event (a fetch, a
 * transaction) is not on any prompt's path, yet where the roles share a machine's CPUs it
 * woke in the middle of every prompt and took a core from the gateway, the actor host or the
 * model call. A niced process still gets the CPUs nobody else wants, so it keeps up unless
 * the machine is saturated. Only the event loop's thread is lowered (Linux sets it per
 * thread); containers (a cgroup each) are weighed by their own share, so there it changes
 * nothing.
 */
function yieldToThePromptPath(nice: number, logger: ReturnType<typeof createLogger>): void {
  if (nice <= 0) return;
  try {
    const before = getPriority();
    if (before >= nice) return;
    setPriority(nice);
    logger.info(`projections: CPU priority lowered to nice ${nice} (GEMELLO_PROJECTIONS_NICE; 0 leaves it), so the prompt path goes first`);
  } catch (err) {
    logger.warn(`projections: could not lower the CPU priority: ${(err as Error).message}`);
  }
}

/** Runs the given roles in this Node process until SIGINT/SIGTERM. */
export async function runNode(roles: Role[]): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger('gemello', config.quiet);
  if (roles.length === 1 && roles[0] === 'projections') yieldToThePromptPath(config.projectionsNice, logger);
  const telemetry = await startTelemetry(process.env, roles, logger);
  const rt = await createRuntime(config, roles, logger);
  reportMemory(rt.backends.metrics, () => process.memoryUsage());
  await rt.start();

  let stopServer = async () => {};
  if (rt.appDeps) {
    const { app, close, closeSockets, settle, authorize, open, text, binary, closed } = createApp(rt.appDeps);
    // Frames above MAX_FRAME_BYTES get an error frame and the socket stays open; only
    // frames past this much larger limit make ws close the socket (1009).
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD_BYTES });
    // Heartbeat: a socket that did not answer the last ping is gone.
    const alive = new WeakSet<WebSocket>();
    function pong(this: WebSocket) {
      alive.add(this);
    }
    /** A socket upgraded for `who`: the gateway gets its frames. Nothing of the upgrade request stays with it. */
    const accept = (ws: WebSocket, who: Who) => {
      // ws reports a protocol error (a frame past maxPayload, bad UTF-8) here, then closes the socket (1009, 1007).
      ws.on('error', ignore);
      const s = open(new WsPort(ws), who);
      if (!s) return;
      alive.add(ws);
      ws.on('pong', pong);
      ws.on('message', (data, isBinary) => (isBinary ? binary(s, asBytes(data)) : text(s, String(data))));
      ws.on('close', () => closed(s));
    };
    let listening!: () => void;
    let failed!: (err: unknown) => void;
    const listen = new Promise<void>((r, j) => ((listening = r), (failed = j)));
    // Hono answers HTTP (at / and /ws too: the chat page, 426); WebSocket upgrades are handled here, with `ws` directly.
    // Only WebSocket upgrades reach the 'upgrade' listener; others (h2c, say) are plain HTTP requests for Hono.
    const serverOptions = { shouldUpgradeCallback: (req: IncomingMessage) => req.headers.upgrade?.toLowerCase() === 'websocket' };
    const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host, serverOptions }, (info) => {
      listening();
      logger.info(`gateway listening on http://${config.host}:${info.port} (WebSocket at / and /ws)`);
      const notice = authOffNotice(config.auth, config.host);
      if (notice) logger.info(notice);
    }) as Server;
    server.once('error', (err) => failed(listenError(err, 'PORT', config.host, config.port)));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // The HTTP server no longer listens for the socket's errors; ws does once it has it.
      socket.on('error', ignore);
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      if (path !== '/' && path !== '/ws') {
        socket.once('finish', () => socket.destroy());
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      authorize(req.headers.authorization, q < 0 ? '' : url.slice(q)).then((who) => {
        socket.off('error', ignore);
        wss.handleUpgrade(req, socket, head, (ws) => accept(ws, who));
      }, (err: Error) => {
        logger.error(`WebSocket upgrade failed: ${err.message}`);
        socket.destroy();
      });
    });
    await listen.catch(async (err) => {
      await rt.stop().catch(() => {});
      throw err;
    });
    const beat = setInterval(() => {
      for (const ws of wss.clients) {
        if (!alive.has(ws)) ws.terminate();
        else {
          alive.delete(ws);
          ws.ping();
        }
      }
    }, 30_000);
    beat.unref();
    stopServer = async () => {
      clearInterval(beat);
      close();
      closeSockets();
      await new Promise<void>((r) => server.close(() => r()));
      wss.close();
      // What the sockets sent before they heard the close reaches the log before it closes.
      await settle();
    };
  } else if (config.opsPort !== null) {
    // No gateway in this process: answer probes and Prometheus on GEMELLO_OPS_PORT (deployments set it).
    const ops = createOpsApp({ metrics: rt.backends.metrics, checks: rt.checks });
    let listening!: () => void;
    let failed!: (err: unknown) => void;
    const listen = new Promise<void>((r, j) => ((listening = r), (failed = j)));
    const opsPort = config.opsPort;
    const server = serve({ fetch: ops.fetch, port: opsPort, hostname: config.host }, (info) => {
      listening();
      logger.info(`health and metrics on http://${config.host}:${info.port} (/health, /ready, /metrics)`);
    }) as Server;
    server.once('error', (err) => failed(listenError(err, 'GEMELLO_OPS_PORT', config.host, opsPort)));
    await listen.catch(async (err) => {
      await rt.stop().catch(() => {});
      throw err;
    });
    stopServer = async () => {
      await new Promise<void>((r) => server.close(() => r()));
    };
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal}: shutting down`);
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    await stopServer().catch(() => {});
    await rt.stop();
    await telemetry.shutdown().catch(() => {});
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  onParentGone(() => void shutdown('the npm that started this process is gone'));
  if (process.send && rt.host) {
    // A parent process (the failover tests, a supervisor) is told which partitions this host owns.
    let last = '';
    const report = setInterval(() => {
      const owned = rt.host!.owned();
      if (owned.join(',') !== last) {
        last = owned.join(',');
        process.send?.({ type: 'owned', partitions: owned });
      }
    }, 100);
    report.unref();
  }
  process.send?.({ type: 'ready' });
  logger.info('ready');
}

/** A ws message's bytes (a Buffer, or fragments, or an ArrayBuffer, by the socket's binaryType). */
function asBytes(data: Buffer | ArrayBuffer | Buffer[]): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
}
