import { ProxyTracerProvider } from '@opentelemetry/api';
import type { Tracer, TracerProvider } from '@opentelemetry/api';

/** Where a tracer name's spans go while telemetry runs (the SDK provider of its service). */
export type TracerSource = (name: string, version?: string, options?: { schemaUrl?: string }) => Tracer;

// Without a delegate, a proxy provider hands out no-op tracers.
const idle = new ProxyTracerProvider();
const noTracing: TracerSource = (name, version, options) => idle.getTracer(name, version, options);
let source: TracerSource = noTracing;

/**
 * The provider registered with the API: one per process, routing each tracer name to its
 * own SDK provider (so the gateway, the actors and the projections are three services in
 * Jaeger even when they share a process). The API caches the tracer it hands out for a
 * name, and modules take theirs at import (`tracerFor('gemello-gateway')`), before
 * telemetry starts; so this provider stays registered and only its source is swapped when
 * telemetry starts or shuts down.
 */
export const router: TracerProvider = {
  getTracer(name, version, options) {
    let from: TracerSource | null = null;
    let tracer: Tracer | null = null;
    const current = (): Tracer => {
      if (from !== source) {
        from = source;
        tracer = source(name, version, options);
      }
      return tracer!;
    };
    return {
      startSpan: (spanName, spanOptions, ctx) => current().startSpan(spanName, spanOptions, ctx),
      startActiveSpan: ((...args: unknown[]) => {
        const t = current();
        return Reflect.apply(t.startActiveSpan, t, args);
      }) as Tracer['startActiveSpan'],
    };
  },
};

/** Sends every tracer's spans to `to` from now on (null: nowhere). */
export function route(to: TracerSource | null): void {
  source = to ?? noTracing;
}

/** Whether spans go anywhere now (telemetry started and not shut down): work that only makes spans can skip them when not. */
export const tracing = (): boolean => source !== noTracing;
