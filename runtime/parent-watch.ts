// Under an npm script (`npm start`, `npm run gemello -- serve`) this process runs in a shell
// that npm started, and npm, sent SIGTERM, passes it to that shell alone: the shell dies
// without passing it on, and the server would go on by itself, holding its port and its data
// directory, until someone finds it. So under npm the process watches its parent and, once
// the parent is gone, shuts down as it does on SIGTERM.
// npm SIGKILLed leaves the shell alive (it waits on this process), so the shell's own parent is
// watched too, where /proc tells it (Linux): once npm is gone, the shell is handed to init.
import { readFileSync } from 'node:fs';
import process from 'node:process';

/** How often the parent is looked at, ms. */
export const PARENT_CHECK_MS = 250;

/**
 * Calls `gone` once, when this process's parent has ended (its parent pid changes: the
 * process was handed to init or a subreaper), or the parent's own parent has (npm SIGKILLed
 * above its shell). Only when an npm script started it
 * (`npm_lifecycle_event` is set); a process started any other way may outlive its parent on
 * purpose (`node main.ts &` from a shell that then exits). Returns the stop of the watch.
 */
export function onParentGone(gone: () => void, env: Record<string, string | undefined> = process.env, everyMs = PARENT_CHECK_MS): () => void {
  if (!env.npm_lifecycle_event) return () => {};
  const parent = process.ppid;
  const grandparent = parentOf(parent);
  const timer = setInterval(() => {
    if (process.ppid === parent && (grandparent === null || parentOf(parent) === grandparent)) return;
    clearInterval(timer);
    gone();
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The parent pid of `pid` from /proc (null where there is no /proc, or the process is gone). */
function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (command) state ppid …": the command may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? ppid : null;
  } catch {
    return null;
  }
}
