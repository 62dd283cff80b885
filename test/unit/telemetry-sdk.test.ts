// startTelemetry: off unless asked; one service per tracer name; context and W3C
// propagation registered; restartable in one process.
import { context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { describe, expect, it } from 'vitest';
import { otlpTracesUrl, selectTraceExport } from '../../telemetry/exporters.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { startTelemetry } from '../../telemetry/sdk.ts';
import { contextFrom, inSpan, traceparentOf, tracerFor } from '../../telemetry/trace.ts';

// Taken at import, before telemetry starts, as gateway/session.ts does.
const gateway = tracerFor('gemello-gateway');
const actors = tracerFor('gemello-actors');

function captureLogger() {
  const lines: string[] = [];
  const logger: Logger = { info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
  return { logger, lines };
}

const service = (exporter: InMemorySpanExporter, name: string) =>
  exporter.getFinishedSpans().find((s) => s.name === name)?.resource.attributes['service.name'];

describe('startTelemetry', () => {
  it('is off without OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER, and says how to turn it on', async () => {
    const { logger, lines } = captureLogger();
    const t = await startTelemetry({}, ['gateway'], logger);
    expect(lines).toEqual([expect.stringMatching(/^info traces: off \(set OTEL_EXPORTER_OTLP_ENDPOINT/)]);
    await inSpan(gateway, 'ws.receive', {}, async (span, ctx) => {
      expect(span.isRecording()).toBe(false);
      expect(traceparentOf(ctx)).toBeNull();
    });
    await t.shutdown();
  });

  it('says why when traces were turned off on purpose, instead of how to turn them on', async () => {
    for (const [env, reason] of [[{ OTEL_SDK_DISABLED: 'TRUE', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, 'OTEL_SDK_DISABLED=true'], [{ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, 'OTEL_TRACES_EXPORTER=none']] as const) {
      const { logger, lines } = captureLogger();
      const t = await startTelemetry(env, ['gateway'], logger);
      expect(lines).toEqual([`info traces: off (${reason})`]);
      await t.shutdown();
    }
  });

  it('records each tracer under its own service, in one process, and says where traces go', async () => {
    const exporter = new InMemorySpanExporter();
    const { logger, lines } = captureLogger();
    const t = await startTelemetry({ OTEL_SERVICE_NAME: 'lib-host' }, ['gateway', 'actors', 'projections'], logger, { exporter });
    expect(lines).toEqual(['info traces: the given exporter (InMemorySpanExporter), as gemello-gateway, gemello-actors, gemello-projections']);
    gateway.startSpan('ws.receive').end();
    actors.startSpan('actor.handle').end();
    trace.getTracer('gemello-projections').startSpan('projection.apply').end();
    trace.getTracer('some-library').startSpan('library.call').end();
    expect(service(exporter, 'ws.receive')).toBe('gemello-gateway');
    expect(service(exporter, 'actor.handle')).toBe('gemello-actors');
    expect(service(exporter, 'projection.apply')).toBe('gemello-projections');
    expect(service(exporter, 'library.call')).toBe('lib-host');
    const ids = new Set(exporter.getFinishedSpans().map((s) => s.resource.attributes['service.instance.id']));
    expect(ids.size).toBe(1); // one process
    await t.shutdown();
  });

  it('nests spans through context.with and carries them over a W3C traceparent', async () => {
    const exporter = new InMemorySpanExporter();
    const t = await startTelemetry({}, ['gateway', 'actors'], captureLogger().logger, { exporter });
    let carried = '';
    await inSpan(gateway, 'ws.receive', {}, async () => {
      await new Promise((r) => setTimeout(r, 1)); // the active span survives an await (AsyncLocalStorage)
      await inSpan(gateway, 'kafka.produce', {}, async (_span, ctx) => {
        carried = traceparentOf(ctx)!;
      });
    });
    // What a consumer does with the traceparent header, in another async context.
    await context.with(context.active(), () => inSpan(actors, 'actor.handle', { parent: contextFrom(carried) }, async () => {}));
    const [receive, produce, handle] = ['ws.receive', 'kafka.produce', 'actor.handle'].map((n) => exporter.getFinishedSpans().find((s) => s.name === n)!);
    expect(carried).toBe(`00-${produce!.spanContext().traceId}-${produce!.spanContext().spanId}-01`);
    expect(produce!.parentSpanContext?.spanId).toBe(receive!.spanContext().spanId);
    expect(handle!.parentSpanContext?.spanId).toBe(produce!.spanContext().spanId);
    expect(handle!.spanContext().traceId).toBe(receive!.spanContext().traceId);
    await t.shutdown();
  });

  it('starts work that carries no trace in a trace of its own, never in the one active where it runs', async () => {
    const exporter = new InMemorySpanExporter();
    const t = await startTelemetry({}, ['gateway', 'actors'], captureLogger().logger, { exporter });
    // A timer armed, or a mailbox task queued, while a prompt's span is active, that carries no traceparent.
    await inSpan(gateway, 'ws.receive', {}, async () => {
      await inSpan(actors, 'flow.timer', { parent: contextFrom(null) }, async () => {});
      await inSpan(actors, 'speech.owed', { parent: contextFrom(undefined) }, async () => {});
    });
    const spans = exporter.getFinishedSpans();
    const receive = spans.find((s) => s.name === 'ws.receive')!;
    for (const name of ['flow.timer', 'speech.owed']) {
      const s = spans.find((x) => x.name === name)!;
      expect(s.parentSpanContext, name).toBeUndefined();
      expect(s.spanContext().traceId, name).not.toBe(receive.spanContext().traceId);
    }
    await t.shutdown();
  });

  it('stops recording at shutdown, and a second start records again through tracers taken before the first', async () => {
    const first = new InMemorySpanExporter();
    const t1 = await startTelemetry({}, ['gateway'], captureLogger().logger, { exporter: first });
    gateway.startSpan('one').end();
    expect(first.getFinishedSpans().map((s) => s.name)).toEqual(['one']);
    await t1.shutdown();
    const after = gateway.startSpan('after-shutdown');
    expect(after.isRecording()).toBe(false);
    after.end();

    const second = new InMemorySpanExporter();
    const t2 = await startTelemetry({}, ['gateway'], captureLogger().logger, { exporter: second });
    gateway.startSpan('two').end();
    expect(second.getFinishedSpans().map((s) => [s.name, s.resource.attributes['service.name']])).toEqual([['two', 'gemello-gateway']]);
    await t2.shutdown();
  });
});

describe('choosing the exporter from the environment', () => {
  it('builds the OTLP traces URL from the endpoint, and takes the signal-specific one as it is', () => {
    expect(otlpTracesUrl({})).toBeNull();
    expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe('http://127.0.0.1:4318/v1/traces');
    expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318/' })).toBe('http://jaeger:4318/v1/traces');
    expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' })).toBe('http://b:4318/custom');
  });

  it('describes each choice; none, OTEL_SDK_DISABLED and unknown names turn traces off', async () => {
    const { logger, lines } = captureLogger();
    const describe_ = async (env: Record<string, string>) => {
      const x = await selectTraceExport(env, logger);
      await x?.shutdown();
      return x?.describe ?? null;
    };
    expect(await describe_({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe('OTLP/HTTP (http/protobuf) to http://127.0.0.1:4318/v1/traces');
    expect(await describe_({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })).toBe('OTLP/HTTP (http/json) to http://127.0.0.1:4318/v1/traces');
    expect(await describe_({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe('OTLP/HTTP (http/protobuf) to http://localhost:4318/v1/traces');
    expect(await describe_({ OTEL_TRACES_EXPORTER: 'jaeger' })).toBe('Jaeger Thrift over UDP to the agent at localhost:6832 (legacy exporter)');
    expect(await describe_({ OTEL_TRACES_EXPORTER: 'jaeger', OTEL_EXPORTER_JAEGER_ENDPOINT: 'http://127.0.0.1:14268/api/traces' })).toBe('Jaeger Thrift over HTTP to http://127.0.0.1:14268/api/traces (legacy exporter)');
    expect(await describe_({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBeNull();
    expect(await describe_({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBeNull();
    expect(lines).toEqual([]);
    expect(await describe_({ OTEL_TRACES_EXPORTER: 'zipkin' })).toBeNull();
    expect(lines).toEqual(['warn OTEL_TRACES_EXPORTER=zipkin is not supported (otlp, jaeger, console or none); traces are off']);
  });

  it('refuses an endpoint that is not a URL, naming the variable', async () => {
    await expect(selectTraceExport({ OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' }, captureLogger().logger)).rejects.toThrow('OTEL_EXPORTER_OTLP_ENDPOINT: localhost:4318/v1/traces is not an http(s) URL');
  });
});
