import { serve, upgradeWebSocket } from '@hono/node-server';
import { WebSocketServer } from 'ws';
import { createApp } from '../gateway/app.ts';
import { authEnabled } from '../gateway/auth.ts';
import { MAX_FRAME_BYTES } from '../gateway/protocol.ts';
import { createLogger } from '../telemetry/logger.ts';
import { startTelemetry } from '../telemetry/sdk.ts';
import { loadConfig } from './config.ts';
import { createRuntime } from './wire.ts';
import type { Role } from './wire.ts';

/** Runs the given roles in this Node process until SIGINT/SIGTERM. */
export async function runNode(roles: Role[]): Promise<void> {
  const logger = createLogger('gemello');
  const config = loadConfig(process.env);
  const telemetry = await startTelemetry(process.env, roles, logger);
  const rt = await createRuntime(config, roles, logger);
  await rt.start();

  let stopServer = async () => {};
  if (rt.appDeps) {
    // Frames above MAX_FRAME_BYTES get an error frame and the socket stays open; only
    // frames past this much larger limit make ws close the socket (1009).
    const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * MAX_FRAME_BYTES });
    const { app, close } = createApp(rt.appDeps, upgradeWebSocket);
    let listening!: () => void;
    const listen = new Promise<void>((r) => (listening = r));
    const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host, websocket: { server: wss } }, (info) => {
      listening();
      logger.info(`gateway listening on http://${config.host}:${info.port} (WebSocket at / and /ws)`);
      if (!authEnabled(config.auth)) logger.info(`no GEMELLO_API_KEYS or GEMELLO_JWT_SECRET: auth is off${config.host === '127.0.0.1' || config.host === 'localhost' ? ', so only this machine can connect' : `; WARNING: listening on ${config.host} without auth`}`);
    });
    await listen;
    // Heartbeat: a socket that did not answer the last ping is gone.
    const alive = new WeakSet<object>();
    wss.on('connection', (ws) => {
      alive.add(ws);
      ws.on('pong', () => alive.add(ws));
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
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
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
