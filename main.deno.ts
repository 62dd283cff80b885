// `deno task start`: gateway, actor host and projections in one Deno process.
import { upgradeWebSocket } from 'hono/deno';
import { createApp } from './gateway/app.ts';
import { authOffNotice } from './gateway/auth.ts';
import { loadConfig } from './runtime/config.ts';
import { SecretFileError, withSecretFiles } from './runtime/file-env.ts';
import { ALL_ROLES, createRuntime } from './runtime/wire.ts';
import { exitOnStartError } from './runtime/fatal.ts';
import { listenError } from './runtime/listen-error.ts';
import { onParentGone } from './runtime/parent-watch.ts';
import { createLogger } from './telemetry/logger.ts';
import { reportMemory } from './telemetry/memory.ts';
import { startTelemetry } from './telemetry/sdk.ts';

// Secrets mounted as files (NAME_FILE) become NAME, as on Node; a bad one, or a bad setting, is one line, as on Node.
let env: Record<string, string | undefined>;
let config: ReturnType<typeof loadConfig>;
try {
  env = withSecretFiles(Deno.env.toObject(), Deno.readTextFileSync);
  config = loadConfig(env);
} catch (err) {
  if (err instanceof SecretFileError) {
    console.error(`gemello: ${err.message}`);
    Deno.exit(2);
  }
  exitOnStartError(err);
}
const logger = createLogger('gemello', config.quiet);
const telemetry = await startTelemetry(env, ALL_ROLES, logger);
// A refusal at start (the data directory in use, a bad master key) is one line, not a stack trace.
const rt = await createRuntime(config, ALL_ROLES, logger).catch(exitOnStartError);
reportMemory(rt.backends.metrics, () => Deno.memoryUsage());
await rt.start().catch(exitOnStartError);
const { app, close, closeSockets, settle } = createApp(rt.appDeps!, upgradeWebSocket);
const listen = () => Deno.serve({
  port: config.port,
  hostname: config.host,
  onListen: ({ port }) => {
    logger.info(`gateway listening on http://${config.host}:${port} (WebSocket at / and /ws), on Deno ${Deno.version.deno}`);
    const notice = authOffNotice(config.auth, config.host);
    if (notice) logger.info(notice);
    logger.info('ready');
  },
}, app.fetch);
let server: ReturnType<typeof listen>;
try {
  server = listen();
} catch (err) {
  await rt.stop().catch(() => {});
  exitOnStartError(listenError(err, 'PORT', config.host, config.port));
}

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info(`${signal}: shutting down`);
  close();
  // Deno's shutdown waits for the requests under way; its WebSockets are closed here, as on Node.
  closeSockets();
  await server.shutdown();
  // What the sockets sent before they closed reaches the log before it closes.
  await settle();
  await rt.stop();
  await telemetry.shutdown().catch(() => {});
  Deno.exit(0);
};
Deno.addSignalListener('SIGINT', () => void shutdown('SIGINT'));
Deno.addSignalListener('SIGTERM', () => void shutdown('SIGTERM'));
// Under an npm script (`npx deno task start`), it stops when `deno task` above it ends (runtime/parent-watch.ts).
// SIGTERM to npx reaches neither: `deno task` outlives the shell npm started (README, Deno).
onParentGone(() => void shutdown('the npm that started this process is gone'), env);
