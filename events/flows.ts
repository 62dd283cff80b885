import { z } from 'zod';

/**
 * The events of a flow (DESIGN §8): what the orchestrator did, step by step. The flow's
 * memory and each data node's dialogue state are their fold (flows/state.ts). What a
 * person said or was told (MessageSaid.text, ValueRead.value, BackendCalled.result) is
 * personal content, sealed like a prompt's text (sealing/personal.ts).
 */
export const FlowEventData = {
  /** The conversation runs this flow at this version; the definition travels with it, so a later deployment never changes a conversation in flight. */
  FlowStarted: z.object({
    flowId: z.string().min(1),
    version: z.string().min(1),
    definition: z.record(z.string(), z.unknown()),
  }),
  /** The flow moved to a task. A task with a side effect carries the idempotency key its call uses, whoever makes it. */
  TaskStarted: z.object({
    task: z.string().min(1),
    taskType: z.string().min(1),
    key: z.string().nullable().default(null),
  }),
  /**
   * The flow said something to the user. `node` names the data node it asks about
   * (`birthDate.year` for sub-data); `awaitUntil`: the noInput timer, when the user's
   * silence until then gets the noInput prompt.
   */
  MessageSaid: z.object({
    task: z.string().min(1),
    kind: z.enum(['say', 'ask', 'confirm', 'noMatch', 'noInput', 'end', 'transfer', 'error']),
    node: z.string().nullable().default(null),
    text: z.string(),
    awaitUntil: z.string().nullable().default(null),
  }),
  /** A value read out of the user's answer (`promptSeq`), by a deterministic parser or by the model; `partial`: some of a date's day/month/year. */
  ValueRead: z.object({
    task: z.string().min(1),
    node: z.string().min(1),
    value: z.unknown(),
    partial: z.boolean().default(false),
    by: z.enum(['parser', 'model']),
    promptSeq: z.number().int().positive(),
  }),
  /** A backend call, an email or an SMS was made (or given up on): its outcome, stored in memory under the task's `saveAs`. */
  BackendCalled: z.object({
    task: z.string().min(1),
    kind: z.enum(['http', 'email', 'sms']),
    backend: z.string().min(1),
    key: z.string().min(1),
    status: z.enum(['ok', 'error']),
    httpStatus: z.number().int().nullable(),
    attempts: z.number().int().nonnegative(),
    latencyMs: z.number().nonnegative(),
    result: z.unknown(),
    error: z.string().nullable().default(null),
  }),
  /** The conversation was handed over to an operator (`to`). */
  FlowTransferred: z.object({ task: z.string().min(1), to: z.string().min(1) }),
  /** The flow is over: `completed` (an end task), `transferred`, `gave_up` (a node's retries ran out), `error` (an effect failed with no onError). */
  FlowEnded: z.object({ task: z.string().nullable(), reason: z.enum(['completed', 'transferred', 'gave_up', 'error']) }),
} as const;

export const FLOW_SCHEMA_VERSION = {
  FlowStarted: 1,
  TaskStarted: 1,
  MessageSaid: 1,
  ValueRead: 1,
  BackendCalled: 1,
  FlowTransferred: 1,
  FlowEnded: 1,
} as const;
