/** A token bucket: `ratePerSec` on average, `burst` at once. */
export function createRateLimit(ratePerSec: number, burst: number, clock: () => number = Date.now) {
  let tokens = burst;
  let refilled = clock();
  return function allow(): boolean {
    const now = clock();
    tokens = Math.min(burst, tokens + ((now - refilled) / 1000) * ratePerSec);
    refilled = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}
