/** Progress of long work on stderr: done/total, rate and time left, at most a few times a second. */
export type Progress = { start(label: string, total: number): void; advance(n: number): void; done(): void };

export function createProgress(out: { write(s: string): unknown } = process.stderr, enabled = true): Progress {
  let label = '';
  let total = 0;
  let done = 0;
  let t0 = 0;
  let last = 0;
  const line = (final: boolean) => {
    const secs = (performance.now() - t0) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const left = rate > 0 && total > done ? ` ~${Math.ceil((total - done) / rate)} s left` : '';
    out.write(`\r${label}: ${done}${total > 0 ? `/${total}` : ''} (${Math.round(rate)}/s)${final ? ` in ${secs.toFixed(1)} s` : left}   ${final ? '\n' : ''}`);
  };
  return {
    start(l, t) {
      label = l;
      total = t;
      done = 0;
      t0 = last = performance.now();
    },
    advance(n) {
      done += n;
      if (enabled && performance.now() - last > 250) {
        last = performance.now();
        line(false);
      }
    },
    done() {
      // A total of 0: not known beforehand (a topic read to its end); the count alone is drawn.
      if (enabled && (total > 0 || done > 0)) line(true);
    },
  };
}
