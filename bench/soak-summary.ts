// The soak's result from what it recorded: memory by thirds of the run (flat when the last
// third's mean is within 10% of the middle third's), the long conversations' lengths, the
// plot (bench/results/soak.svg), the samples file and the printed table.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { svgPlot } from './plot.ts';
import { percentile, report, round } from './report.ts';

export type Sample = { t: number; rssMiB: number; heapMiB: number | null; prompts: number; load: number; gauges: Record<string, number> };

export type SoakRecord = {
  params: Record<string, unknown>;
  samples: Sample[];
  /** [seconds into the run, prompt → reply ms] of every answered prompt. */
  latencies: Array<[number, number]>;
  failures: string[];
  sampleErrors: string[];
  prompts: number;
  /** Prompts answered per long conversation. */
  perLong: number[];
  longConversations: number;
  target: number;
  minSeconds: number;
  maxSeconds: number;
  /** Seconds into the run at which every long conversation had passed the target (null: never). */
  reachedAt: number | null;
  snapshotBytes: number;
};

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
/** Sum of a gauge's series (all labels) in a sample. */
const gaugeSum = (s: Sample, name: string) => Object.entries(s.gauges).reduce((sum, [k, v]) => (k === name || k.startsWith(`${name}{`) ? sum + v : sum), 0);

export function summarize(r: SoakRecord): void {
  const { samples, latencies, failures, perLong } = r;
  const duration = samples.at(-1)?.t ?? r.minSeconds;
  const inThird = (t: number, k: number) => t >= (k * duration) / 3 && t < ((k + 1) * duration) / 3;
  const third = (k: number) => samples.filter((s) => inThird(s.t, k));
  const rss = [0, 1, 2].map((k) => mean(third(k).map((s) => s.rssMiB)));
  const heaps = [0, 1, 2].map((k) => mean(third(k).flatMap((s) => (s.heapMiB === null ? [] : [s.heapMiB]))));
  const lat = (k: number) => latencies.filter(([t]) => inThird(t, k)).map(([, ms]) => ms);
  const rssRatio = rss[1] ? rss[2]! / rss[1] : 0;
  const heapRatio = heaps[1] ? heaps[2]! / heaps[1] : 0;
  const lengths = Array.from({ length: r.longConversations }, (_, i) => perLong[i] ?? 0);
  const minLong = Math.min(...lengths);
  const loads = samples.map((s) => s.load);
  const lag = samples.map((s) => gaugeSum(s, 'gemello_actor_checkpoint_lag_records'));
  const consumerLag = samples.map((s) => gaugeSum(s, 'gemello_log_consumer_lag_records'));
  const longPrompts = lengths.reduce((a, b) => a + b, 0);
  const metrics = {
    duration_s: Math.round(duration),
    prompts: r.prompts,
    prompts_per_s: round(r.prompts / duration, 1),
    long_conversation_share: round(longPrompts / Math.max(1, r.prompts)),
    failed_prompts: failures.length,
    long_conversations: r.longConversations,
    target_prompts: r.target,
    target_reached: r.reachedAt !== null ? 1 : 0,
    target_reached_at_s: r.reachedAt ?? -1,
    long_conversation_prompts_min: minLong,
    long_conversation_prompts_max: Math.max(...lengths),
    rss_mib_thirds_1: round(rss[0]!, 1),
    rss_mib_thirds_2: round(rss[1]!, 1),
    rss_mib_thirds_3: round(rss[2]!, 1),
    rss_last_over_middle: round(rssRatio),
    heap_mib_thirds_1: round(heaps[0]!, 1),
    heap_mib_thirds_2: round(heaps[1]!, 1),
    heap_mib_thirds_3: round(heaps[2]!, 1),
    heap_last_over_middle: round(heapRatio),
    rss_mib_max: round(Math.max(...samples.map((s) => s.rssMiB)), 1),
    prompt_p50_ms_middle_third: round(percentile(lat(1), 50)),
    prompt_p50_ms_last_third: round(percentile(lat(2), 50)),
    prompt_p99_ms_last_third: round(percentile(lat(2), 99)),
    snapshot_bytes_longest: r.snapshotBytes,
    checkpoint_lag_records_max: Math.max(0, ...lag),
    checkpoint_lag_records_p50: percentile(lag, 50),
    consumer_lag_records_max: Math.max(0, ...consumerLag),
    load_average_min: round(Math.min(...loads), 2),
    load_average_mean: round(mean(loads), 2),
    load_average_max: round(Math.max(...loads), 2),
  };
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  const bands = [0, 1, 2].map((k) => ({ from: (k * duration) / 3, to: ((k + 1) * duration) / 3, label: ['warm-up third', 'middle third', 'last third'][k]! }));
  writeFileSync(`${dir}soak.svg`, svgPlot([
    { name: 'RSS (MiB)', color: '#c0392b', points: samples.map((s) => [s.t, s.rssMiB]) },
    { name: 'heap used (MiB)', color: '#2471a3', points: samples.flatMap((s) => (s.heapMiB === null ? [] : [[s.t, s.heapMiB] as [number, number]])) },
    { name: 'prompts (thousands)', color: '#7f8c8d', points: samples.map((s) => [s.t, s.prompts / 1000]) },
  ], { title: `gemello serve, ${r.longConversations} long conversations (${minLong}+ prompts each) + new ones: memory over ${Math.round(duration)} s`, xLabel: 'seconds', yLabel: 'MiB (prompts: thousands)', bands }));
  writeFileSync(`${dir}soak-samples.json`, JSON.stringify({ samples, failures: failures.slice(0, 50), sampleErrors: r.sampleErrors.slice(0, 50) }, null, 1) + '\n');
  const flat = (x: number) => (x > 0 && Math.abs(x - 1) <= 0.1 ? 'flat' : 'NOT flat');
  report({
    name: 'soak',
    params: r.params,
    metrics,
    table: [
      ['prompts (per second)', `${r.prompts} (${metrics.prompts_per_s}/s; ${Math.round(metrics.long_conversation_share * 100)}% to the long ones)`, ''],
      ['failed prompts', String(failures.length), '0'],
      ['prompts per long conversation (min–max)', `${minLong}–${metrics.long_conversation_prompts_max}${r.reachedAt !== null ? ` (all past ${r.target} at ${r.reachedAt} s)` : ` (NOT all past ${r.target} within ${r.maxSeconds} s)`}`, `> ${r.target}`],
      ['RSS mean by third (MiB)', rss.map((x) => round(x, 1)).join(' / '), ''],
      ['RSS last third / middle third', `${metrics.rss_last_over_middle} (${flat(rssRatio)})`, 'within 10%'],
      ['heap mean by third (MiB)', heaps.map((x) => round(x, 1)).join(' / '), ''],
      ['heap last third / middle third', `${metrics.heap_last_over_middle} (${flat(heapRatio)})`, 'within 10%'],
      ['prompt → reply p50, middle / last third', `${metrics.prompt_p50_ms_middle_third} / ${metrics.prompt_p50_ms_last_third} ms`, ''],
      ['largest snapshot of a long conversation', `${r.snapshotBytes} B`, '≤ 32 KB'],
      ['checkpoint lag (records, summed over partitions) p50 / max', `${metrics.checkpoint_lag_records_p50} / ${metrics.checkpoint_lag_records_max}`, ''],
      ['consumer lag (records, all groups) max', String(metrics.consumer_lag_records_max), ''],
      ['load average min / mean / max', `${metrics.load_average_min} / ${metrics.load_average_mean} / ${metrics.load_average_max}`, ''],
    ],
  });
  if (failures.length) console.log(`first failures:\n${failures.slice(0, 10).join('\n')}`);
}
