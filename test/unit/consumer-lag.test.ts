// The consumer-lag gauge: records appended to a consumer's partitions and not yet handled.
import { describe, expect, it } from 'vitest';
import { withConsumerLag } from '../../log/consumer-lag.ts';
import { createMetrics } from '../../telemetry/metrics.ts';
import { tempFileLogs, sleep } from '../support/temp-log.ts';

const fileLog = tempFileLogs('lag');

describe('gemello_log_consumer_lag_records', () => {
  it('counts what a consumer has not handled yet, and falls to 0 once it has', async () => {
    const metrics = createMetrics();
    // Labelled with the names on the broker (the namespace's), as two deployments scraped together must be.
    const log = withConsumerLag(fileLog(2), metrics, (name) => `ns1.${name}`, 20);
    const labels = { group: 'ns1.g', topic: 'ns1.t' };
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let handled = 0;
    const sub = await log.consume({ group: 'g', topic: 't', from: 'earliest', handle: async (_p, records) => {
      await gate;
      handled += records.length;
    } });
    await sleep(60); // sampled once with nothing handled: the partitions' ends are the base
    await log.append('t', 0, Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: '{}', headers: {} })));
    await log.append('t', 1, Array.from({ length: 3 }, (_, i) => ({ key: `k${i}`, value: '{}', headers: {} })));
    for (let i = 0; i < 100 && metrics.value('gemello_log_consumer_lag_records', labels) < 8; i++) await sleep(10);
    expect(metrics.value('gemello_log_consumer_lag_records', labels)).toBe(8);
    open();
    for (let i = 0; i < 100 && (handled < 8 || metrics.value('gemello_log_consumer_lag_records', labels) > 0); i++) await sleep(10);
    expect(handled).toBe(8);
    expect(metrics.value('gemello_log_consumer_lag_records', labels)).toBe(0);
    expect(metrics.render()).toContain('gemello_log_consumer_lag_records{group="ns1.g",topic="ns1.t"} 0');
    await sub.stop();
    await log.close();
  });
});
