import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { Logger } from './logger.ts';

type Env = Record<string, string | undefined>;

/** Where finished spans go: a span processor per service, and what to tell the operator. */
export type TraceExport = {
  describe: string;
  processorFor(service: string): SpanProcessor;
  shutdown(): Promise<void>;
};

const DEFAULT_OTLP_TRACES_URL = 'http://localhost:4318/v1/traces';

/** The OTLP traces URL the environment names, or null (the signal-specific variable is used as it is). */
export function otlpTracesUrl(env: Env): string | null {
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) return `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  return null;
}

/**
 * Reads the standard OTEL_* variables: traces are off unless an OTLP endpoint is set or
 * OTEL_TRACES_EXPORTER names an exporter (otlp, jaeger, console; none turns them off).
 */
export async function selectTraceExport(env: Env, logger: Logger): Promise<TraceExport | null> {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return null;
  const names = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (names.includes('none')) return null;
  const url = otlpTracesUrl(env);
  const name = names[0] ?? (url ? 'otlp' : null);
  if (names.length > 1) logger.warn(`OTEL_TRACES_EXPORTER=${env.OTEL_TRACES_EXPORTER}: one exporter at a time; using ${name}`);
  switch (name) {
    case null:
      return null;
    case 'otlp':
      return otlp(env, url ?? DEFAULT_OTLP_TRACES_URL, logger);
    case 'jaeger':
      return jaeger(env);
    case 'console': {
      const { ConsoleSpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace');
      return shared('the console (OTEL_TRACES_EXPORTER=console)', new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() }));
    }
    default:
      logger.warn(`OTEL_TRACES_EXPORTER=${name} is not supported (otlp, jaeger, console or none); traces are off`);
      return null;
  }
}

/** Why traces are off, for the start log: turned off on purpose, or nothing asked for them. */
export function tracesOffReason(env: Env): string {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return 'OTEL_SDK_DISABLED=true';
  const names = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (names.includes('none')) return 'OTEL_TRACES_EXPORTER=none';
  if (names.length) return `OTEL_TRACES_EXPORTER=${env.OTEL_TRACES_EXPORTER}`;
  return 'set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318 for Jaeger, or OTEL_TRACES_EXPORTER=jaeger';
}

/** The test hook: spans go to the given exporter as each one ends. */
export async function exportTo(exporter: SpanExporter): Promise<TraceExport> {
  const { SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace');
  return shared(`the given exporter (${exporter.constructor.name})`, new SimpleSpanProcessor({ exporter }));
}

function shared(describe: string, processor: SpanProcessor): TraceExport {
  return { describe, processorFor: () => processor, shutdown: () => processor.shutdown() };
}

async function otlp(env: Env, url: string, logger: Logger): Promise<TraceExport> {
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    const variable = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
    // A setting to fix, told in one line (bad_config) like every other one.
    throw Object.assign(new Error(`${variable}: ${url} is not an http(s) URL (expected e.g. http://127.0.0.1:4318)`), { code: 'bad_config' });
  }
  let protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim();
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    logger.warn(`OTLP protocol ${protocol} is not supported here (http/protobuf or http/json); using http/protobuf`);
    protocol = 'http/protobuf';
  }
  const { core, sdk } = await sdkModules();
  const headers = {
    ...core.parseKeyPairsIntoRecord(env.OTEL_EXPORTER_OTLP_HEADERS),
    ...core.parseKeyPairsIntoRecord(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS),
  };
  // One exporter for every service: each span carries its own resource, and OTLP groups them by it.
  const { OTLPTraceExporter } = protocol === 'http/json'
    ? await import('@opentelemetry/exporter-trace-otlp-http')
    : await import('@opentelemetry/exporter-trace-otlp-proto');
  const exporter = new OTLPTraceExporter({ url, headers });
  return shared(`OTLP/HTTP (${protocol}) to ${url}`, new sdk.BatchSpanProcessor({ exporter, ...batchOptions(env) }));
}

async function jaeger(env: Env): Promise<TraceExport> {
  const { sdk } = await sdkModules();
  const { JaegerExporter } = await import('@opentelemetry/exporter-jaeger');
  const config = {
    endpoint: env.OTEL_EXPORTER_JAEGER_ENDPOINT || undefined,
    host: env.OTEL_EXPORTER_JAEGER_AGENT_HOST || undefined,
    port: env.OTEL_EXPORTER_JAEGER_AGENT_PORT ? Number(env.OTEL_EXPORTER_JAEGER_AGENT_PORT) : undefined,
    username: env.OTEL_EXPORTER_JAEGER_USER || undefined,
    password: env.OTEL_EXPORTER_JAEGER_PASSWORD || undefined,
  };
  const processors: SpanProcessor[] = [];
  return {
    describe: config.endpoint
      ? `Jaeger Thrift over HTTP to ${config.endpoint} (legacy exporter)`
      : `Jaeger Thrift over UDP to the agent at ${config.host ?? 'localhost'}:${config.port ?? 6832} (legacy exporter)`,
    // One exporter per service: the Jaeger exporter names its Thrift "process" after the
    // service of the first span it sends and keeps that name for every later span.
    processorFor() {
      // A 2.x exporter on the 3.x SDK: it reads only span fields both versions share (checked by test/unit/telemetry-jaeger.test.ts).
      const exporter = new JaegerExporter(config) as unknown as SpanExporter;
      const p = new sdk.BatchSpanProcessor({ exporter, ...batchOptions(env) });
      processors.push(p);
      return p;
    },
    async shutdown() {
      await Promise.all(processors.map((p) => p.shutdown()));
    },
  };
}

async function sdkModules() {
  const [core, sdk] = await Promise.all([import('@opentelemetry/core'), import('@opentelemetry/sdk-trace')]);
  return { core, sdk };
}

function batchOptions(env: Env) {
  const num = (v: string | undefined) => (v && Number.isFinite(Number(v)) && Number(v) >= 0 ? Number(v) : undefined);
  return {
    scheduledDelayMillis: num(env.OTEL_BSP_SCHEDULE_DELAY),
    exportTimeoutMillis: num(env.OTEL_BSP_EXPORT_TIMEOUT),
    maxQueueSize: num(env.OTEL_BSP_MAX_QUEUE_SIZE),
    maxExportBatchSize: num(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE),
  };
}
