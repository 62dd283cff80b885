import module from 'node:module';

/**
 * Asks Node to keep the code it compiles for gemello's modules (in NODE_COMPILE_CACHE, or
 * `node-compile-cache` under the system's temp directory) and to take it from there on the next
 * start: a process's start cost ≈ 0.35 s less CPU with it (`gemello help`, 2026-12-03: 0.80 →
 * 0.45 s). Call it from an entry file before importing the rest: the modules imported before it
 * are compiled already. NODE_DISABLE_COMPILE_CACHE=1 turns it off; where the directory cannot be
 * written nothing is kept and nothing fails; Deno has no such cache, so there it does nothing.
 */
export function keepCompiledCode(): void {
  (module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
}
