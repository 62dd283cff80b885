import type { Metrics } from '../telemetry/metrics.ts';
import type { ConsumeOptions, EventLog, Subscription } from './port.ts';

/** How often the log's end offsets are read for the gauge. */
const SAMPLE_MS = 5_000;

type Tracked = {
  group: string;
  topic: string;
  /** Partitions assigned to this member now. */
  assigned: Set<number>;
  /** The offset after the last batch handled, by partition. */
  next: Map<number, number>;
  /** A partition's end when it was first sampled without a batch handled: what is appended after it and not handled is lag. */
  base: Map<number, number>;
};

/**
 * The log with a consumer-lag gauge for every consumer of this process:
 * `gemello_log_consumer_lag_records{group,topic}`, the records appended to its assigned
 * partitions and not yet handled (from the last handled batch, or from when the partition was
 * first seen, for one that has delivered nothing yet), sampled every 5 s while any consumer
 * runs. It shows a role that falls behind the log (the projector, the actor host, a
 * gateway's feed) before its memory or its users do. The labels are the names on the broker
 * (`onBroker`: with the namespace), so two deployments scraped together stay apart.
 */
export function withConsumerLag(log: EventLog, metrics: Metrics, onBroker: (name: string) => string = (n) => n, sampleMs = SAMPLE_MS): EventLog {
  const gauge = metrics.gauge('gemello_log_consumer_lag_records', 'Records appended to a consumer\'s assigned partitions and not yet handled, by group and topic (sampled every 5 s)');
  const tracked = new Set<Tracked>();
  let timer: ReturnType<typeof setInterval> | null = null;
  let sampling = false;

  async function sample(): Promise<void> {
    if (sampling) return;
    sampling = true;
    try {
      const topics = [...new Set([...tracked].map((t) => t.topic))];
      const ends = new Map(await Promise.all(topics.map(async (topic) => [topic, await log.endOffsets(topic)] as const)));
      for (const t of tracked) {
        const end = ends.get(t.topic) ?? [];
        let lag = 0;
        for (const p of t.assigned) {
          const at = end[p] ?? 0;
          const from = t.next.get(p) ?? t.base.get(p);
          if (from === undefined) t.base.set(p, at);
          else lag += Math.max(0, at - from);
        }
        gauge.set(lag, { group: onBroker(t.group), topic: onBroker(t.topic) });
      }
    } catch {
      // The log does not answer: the gauge keeps its last values (/ready says why).
    } finally {
      sampling = false;
    }
  }

  const consume = async (opts: ConsumeOptions): Promise<Subscription> => {
    const t: Tracked = { group: opts.group, topic: opts.topic, assigned: new Set(), next: new Map(), base: new Map() };
    const sub = await log.consume({
      ...opts,
      onAssigned(partitions) {
        t.assigned = new Set(partitions);
        for (const p of [...t.next.keys()]) if (!t.assigned.has(p)) t.next.delete(p);
        t.base.clear();
        return opts.onAssigned?.(partitions);
      },
      async handle(partition, records) {
        await opts.handle(partition, records);
        const last = records[records.length - 1];
        if (last) t.next.set(partition, last.offset + 1);
      },
    });
    tracked.add(t);
    timer ??= setInterval(() => void sample(), sampleMs);
    timer.unref?.();
    return {
      ...sub,
      memberId: sub.memberId?.bind(sub),
      async stop() {
        tracked.delete(t);
        gauge.set(0, { group: t.group, topic: t.topic });
        if (!tracked.size && timer) {
          clearInterval(timer);
          timer = null;
        }
        await sub.stop();
      },
    };
  };

  const close = async (): Promise<void> => {
    if (timer) clearInterval(timer);
    timer = null;
    tracked.clear();
    await log.close();
  };

  // Everything else is the log's own; `consume` is tracked.
  return new Proxy(log, {
    get(target, prop, receiver) {
      if (prop === 'consume') return consume;
      if (prop === 'close') return close;
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
