import { Hono } from 'hono';
import type { Metrics } from '../telemetry/metrics.ts';

export type OpsDeps = {
  metrics: Metrics;
  /** Each backend's health: null when it answers, else why not. */
  checks: () => Promise<Record<string, string | null>>;
};

/**
 * The HTTP face of a process that runs no gateway (`gemello actors`, `gemello projections`):
 * the same `/health`, `/ready` and `/metrics` as the gateway's, so probes and Prometheus
 * treat every role alike.
 */
export function createOpsApp(deps: OpsDeps) {
  const app = new Hono();
  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.get('/ready', async (c) => {
    const checks = await deps.checks();
    const failing = Object.values(checks).some((v) => v !== null);
    const body = { status: failing ? 'unavailable' : 'ready', backends: Object.fromEntries(Object.entries(checks).map(([k, v]) => [k, v ?? 'ok'])) };
    return c.json(body, failing ? 503 : 200);
  });
  app.get('/metrics', (c) => c.text(deps.metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4' }));
  app.notFound((c) => c.json({ error: 'not found', code: 'not_found' }, 404));
  return app;
}
