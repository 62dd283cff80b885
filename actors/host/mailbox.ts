import { initialState } from '../state.ts';
import type { Actor } from './context.ts';

/** A conversation's actor before its state is recovered. */
export function newActor(conversationId: string): Actor {
  return {
    id: conversationId,
    state: initialState(conversationId),
    position: null,
    queue: Promise.resolve(),
    busy: 0,
    lastUsed: Date.now(),
    unsnapshottedFrom: null,
    sinceSnapshot: 0,
    pendingFrom: null,
    pendingAt: new Map(),
    inFlight: new Set(),
    failures: new Map(),
    traces: new Map(),
    lastTrace: null,
    quiet: new Set(),
    snapshotting: null,
    snapshotNext: null,
    key: undefined,
    flowTimer: null,
    flowEffect: null,
    generation: null,
    replaced: false,
    speakers: new Map(),
  };
}

/** Runs a task in the actor's mailbox: after every task queued before it, one at a time. */
export function run<T>(actor: Actor, task: () => Promise<T>): Promise<T> {
  actor.busy++;
  actor.lastUsed = Date.now();
  const result = actor.queue.then(task);
  actor.queue = result.then(
    () => void actor.busy--,
    () => void actor.busy--,
  );
  return result;
}
