/**
 * `p`, or a rejection with `message` once `ms` have passed without it settling (what `p` does
 * later is ignored). The timer does not keep the process alive and is cleared when `p` settles.
 */
export function within<T>(p: Promise<T>, ms: number, message = `no answer within ${ms} ms`): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref?.();
    p.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}
