// OTEL_TRACES_EXPORTER=jaeger: @opentelemetry/exporter-jaeger (a 2.x package) exports the
// 3.x SDK's spans as Jaeger Thrift, each service in a batch of its own named after it.
import { createServer } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Logger } from '../../telemetry/logger.ts';
import { startTelemetry } from '../../telemetry/sdk.ts';
import { inSpan, tracerFor } from '../../telemetry/trace.ts';

const quiet: Logger = { info() {}, warn() {}, error() {} };
const posts: { path: string; contentType: string; body: Buffer }[] = [];
const collector = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    posts.push({ path: `${req.method} ${req.url}`, contentType: String(req.headers['content-type']), body: Buffer.concat(chunks) });
    res.writeHead(202).end();
  });
});
let endpoint = '';

beforeAll(async () => {
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}/api/traces`;
});
afterAll(() => new Promise<void>((r) => collector.close(() => r())));

it('sends each service its own Thrift batch to OTEL_EXPORTER_JAEGER_ENDPOINT, flushed at shutdown', async () => {
  const t = await startTelemetry({ OTEL_TRACES_EXPORTER: 'jaeger', OTEL_EXPORTER_JAEGER_ENDPOINT: endpoint }, ['gateway', 'actors'], quiet);
  await inSpan(tracerFor('gemello-gateway'), 'ws.receive', { attributes: { 'conversation.id': 'c-jaeger-1' } }, async () => {
    await inSpan(tracerFor('gemello-actors'), 'actor.handle', {}, async () => {});
  });
  await t.shutdown();

  expect(posts.map((p) => `${p.path} ${p.contentType}`)).toEqual(['POST /api/traces application/x-thrift', 'POST /api/traces application/x-thrift']);
  // Thrift carries strings as their bytes: the batch's process (service) name, then its spans.
  const batchOf = (service: string) => posts.find((p) => p.body.includes(service))!.body;
  const gateway = batchOf('gemello-gateway');
  const actors = batchOf('gemello-actors');
  expect(gateway).not.toBe(actors);
  expect(gateway.includes('ws.receive') && gateway.includes('c-jaeger-1') && !gateway.includes('actor.handle')).toBe(true);
  expect(actors.includes('actor.handle') && !actors.includes('ws.receive') && !actors.includes('gemello-gateway')).toBe(true);
});
