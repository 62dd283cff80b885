// inSpan with traces off: the function runs in its parent's context (no context is made for
// a span nobody records), and a trace that came with the work still reaches the function's
// context, so what it causes continues that trace.
import { context, createContextKey, trace, TraceFlags } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { inSpan, tracerFor } from '../../telemetry/trace.ts';

const tracer = tracerFor('gemello-actors');

describe('inSpan, traces off', () => {
  it('runs the function in the parent context itself, and returns and throws what it does', async () => {
    const parent = context.active().setValue(createContextKey('test'), 1);
    const seen = await inSpan(tracer, 'actor.handle', { parent }, async (span, ctx) => {
      expect(span.isRecording()).toBe(false);
      return ctx;
    });
    expect(seen).toBe(parent);
    await expect(inSpan(tracer, 'actor.handle', {}, async () => {
      throw new Error('boom');
    })).rejects.toThrow('boom');
  });

  it('keeps a trace the parent continues in the function\'s context', async () => {
    const carried = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED, isRemote: true };
    const parent = trace.setSpanContext(context.active(), carried);
    await inSpan(tracer, 'event.append', { parent }, async (_span, ctx) => {
      expect(trace.getSpanContext(ctx)).toMatchObject({ traceId: carried.traceId, spanId: carried.spanId });
    });
  });
});
