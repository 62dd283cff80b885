import { context, propagation, ProxyTracerProvider, trace } from '@opentelemetry/api';
import type { SpanExporter, TracerProvider } from '@opentelemetry/sdk-trace';
import { exportTo, selectTraceExport, tracesOffReason } from './exporters.ts';
import type { Logger } from './logger.ts';
import { route, router } from './router.ts';

/** The service each role's spans appear under (tracers are taken by these names). */
export const SERVICES = {
  gateway: 'gemello-gateway',
  actors: 'gemello-actors',
  projections: 'gemello-projections',
} as const;

const KNOWN = new Set<string>(Object.values(SERVICES));

export type Telemetry = {
  /** Exports what is still buffered, then stops tracing. */
  shutdown(): Promise<void>;
};

export type TelemetryOptions = {
  /** Test hook: spans go to this exporter as each one ends, whatever the environment says. */
  exporter?: SpanExporter;
};

/**
 * Starts trace export when the environment asks for it (OTEL_EXPORTER_OTLP_ENDPOINT, or
 * OTEL_TRACES_EXPORTER=jaeger|otlp|console). Registers the W3C trace-context propagator,
 * an AsyncLocalStorage context manager, and one SDK tracer provider per service, each with
 * its own `service.name`. Nothing here hooks the module loader, so Deno runs it as Node does.
 */
export async function startTelemetry(
  env: Record<string, string | undefined>,
  roles: string[],
  logger: Logger,
  options: TelemetryOptions = {},
): Promise<Telemetry> {
  const exporting = options.exporter ? await exportTo(options.exporter) : await selectTraceExport(env, logger);
  if (!exporting) {
    logger.info(`traces: off (${tracesOffReason(env)})`);
    return { async shutdown() {} };
  }
  const [sdk, resources, core, hooks] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
    import('@opentelemetry/context-async-hooks'),
  ]);

  const base = resources.defaultResource().merge(resources.resourceFromAttributes({
    ...core.parseKeyPairsIntoRecord(env.OTEL_RESOURCE_ATTRIBUTES),
    'service.namespace': 'gemello',
    // One id per process, shared by its services: Jaeger tells processes apart by it.
    'service.instance.id': globalThis.crypto.randomUUID(),
  }));
  const providers = new Map<string, TracerProvider>();
  const providerFor = (service: string): TracerProvider => {
    let p = providers.get(service);
    if (!p) {
      p = new sdk.TracerProvider({
        resource: base.merge(resources.resourceFromAttributes({ 'service.name': service })),
        spanProcessors: [exporting.processorFor(service)],
      });
      providers.set(service, p);
    }
    return p;
  };
  // Tracers named after a service go to it; any other (a library's) to OTEL_SERVICE_NAME or "gemello".
  const serviceOf = (tracerName: string) => (KNOWN.has(tracerName) ? tracerName : env.OTEL_SERVICE_NAME || 'gemello');

  context.disable();
  context.setGlobalContextManager(new hooks.AsyncLocalStorageContextManager().enable());
  propagation.disable();
  propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
  // Registered once per process and never removed: `trace.disable()` would orphan the
  // tracers modules already hold (see router.ts), so a second start finds it in place.
  const ours = () => {
    const p = trace.getTracerProvider();
    return p instanceof ProxyTracerProvider && p.getDelegate() === router;
  };
  if (!ours() && !(trace.setGlobalTracerProvider(router) && ours())) {
    logger.warn('traces: another tracer provider is registered with @opentelemetry/api; gemello spans may not be exported');
  }
  route((name, version, opts) => providerFor(serviceOf(name)).getTracer(name, version, opts));

  const services = roles.map((r) => SERVICES[r as keyof typeof SERVICES] ?? r);
  logger.info(`traces: ${exporting.describe}, as ${services.join(', ')}`);

  let down: Promise<void> | null = null;
  return {
    shutdown() {
      down ??= (async () => {
        route(null);
        // Spans already started still end into their provider, and are flushed here.
        await Promise.allSettled([...providers.values()].map((p) => p.shutdown()));
        await exporting.shutdown().catch((err) => logger.warn(`traces: flushing failed: ${(err as Error).message}`));
        propagation.disable();
        context.disable();
      })();
      return down;
    },
  };
}
