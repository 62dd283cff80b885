import type { DomainEvent } from '../events/schemas.ts';
import type { DateParts } from './parse-date.ts';

/** Where a DDT's current data node is in its dialogue: ask → (value read) → confirm → confirmed. */
export type NodeState = {
  /** Index of the node in its DDT. */
  index: number;
  phase: 'ask' | 'confirm';
  /** The value read, waiting for the user's confirmation (phase confirm). */
  value?: unknown;
  /** A date's parts read so far, when the answer was partial. */
  parts?: DateParts;
  /** The date part being asked (sub-data), if any. */
  sub?: 'day' | 'month' | 'year';
  noMatch: number;
  noInput: number;
};

/** A flow as the fold of its events. */
export type FlowState = {
  flowId: string;
  version: string;
  /** The definition the conversation started with (FlowStarted): it finishes on it. */
  definition: Record<string, unknown>;
  status: 'running' | 'ended';
  /** The current task and the seq of its TaskStarted. */
  task: string | null;
  taskSeq: number;
  /** What the flow's tasks filled: `<ddt>.<node>` values and backend results under their saveAs. */
  memory: Record<string, unknown>;
  /** The current data node, while a getData task runs. */
  node?: NodeState;
  /** A side effect owed (the current task's call), with its idempotency key. */
  effect?: { task: string; kind: 'http' | 'email' | 'sms'; key: string };
  /** The noInput timer: it fires at `dueAt` unless the user speaks first. `seq`: the MessageSaid that set it. */
  timer?: { seq: number; dueAt: string };
  /** A prompt the model is to read for the current node (the parsers read nothing in it). */
  read?: { promptSeq: number };
  ended?: { reason: string; at: string; task: string | null };
  transferred?: { to: string; at: string };
};

export const FLOW_EVENT_TYPES = ['FlowStarted', 'TaskStarted', 'MessageSaid', 'ValueRead', 'BackendCalled', 'FlowTransferred', 'FlowEnded'] as const;
export type FlowEventType = (typeof FLOW_EVENT_TYPES)[number];
export type FlowEvent = Extract<DomainEvent, { type: FlowEventType }>;
/** The events a flow's fold reads: its own, and a prompt or a confirmation in it. */
export type FlowInputEvent = FlowEvent | Extract<DomainEvent, { type: 'PromptReceived' | 'DataConfirmed' }>;

export const isFlowEvent = (e: { type: string }): e is FlowEvent => (FLOW_EVENT_TYPES as readonly string[]).includes(e.type);

const EFFECT_KIND: Record<string, 'http' | 'email' | 'sms'> = { backendCall: 'http', sendEmail: 'email', sendSms: 'sms' };

/** Sets `memory[a][b]…` for a dotted key, copying the objects on the way. */
function put(memory: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const [head, ...rest] = key.split('.');
  if (!rest.length) return { ...memory, [head!]: value };
  const inner = memory[head!];
  return { ...memory, [head!]: put(inner && typeof inner === 'object' && !Array.isArray(inner) ? (inner as Record<string, unknown>) : {}, rest.join('.'), value) };
}

/**
 * Applies one event to a flow. Pure and total: every transition the decider makes is
 * written down here, so a flow recovered from its events is the flow that made them.
 */
export function evolveFlow(flow: FlowState | undefined, event: FlowInputEvent, meta: { seq: number; at: string }): FlowState | undefined {
  if (event.type === 'FlowStarted') {
    return { flowId: event.data.flowId, version: event.data.version, definition: event.data.definition, status: 'running', task: null, taskSeq: 0, memory: {} };
  }
  if (!flow) return flow;
  // Whatever happens next, the flow no longer waits on the timer or the model it waited on (PromptReceived may set a read again).
  const { timer: _t, read: _rd, ...untimed } = flow;
  switch (event.type) {
    case 'TaskStarted': {
      const { node: _n, effect: _e, ...rest } = untimed;
      const kind = EFFECT_KIND[event.data.taskType];
      return { ...rest, task: event.data.task, taskSeq: meta.seq, ...(kind && event.data.key ? { effect: { task: event.data.task, kind, key: event.data.key } } : {}) };
    }
    case 'MessageSaid': {
      const timer = event.data.awaitUntil ? { timer: { seq: meta.seq, dueAt: event.data.awaitUntil } } : {};
      const n = flow.node;
      const sub = event.data.node?.includes('.') ? (event.data.node.split('.')[1] as NodeState['sub']) : undefined;
      switch (event.data.kind) {
        case 'ask': {
          // A new node, a node asked again after a "no", or a date's missing part (`birthDate.year`).
          const index = nodeIndex(flow, (event.data.node ?? '').split('.')[0]!);
          const same = n !== undefined && n.index === index;
          const node: NodeState = { index, phase: 'ask', noMatch: same ? n.noMatch : 0, noInput: same ? n.noInput : 0, ...(sub ? { sub } : {}), ...(sub && same && n.parts ? { parts: n.parts } : {}) };
          return { ...untimed, node, ...timer };
        }
        case 'confirm':
          return { ...untimed, node: { ...n!, phase: 'confirm' }, ...timer };
        case 'noMatch': {
          // The answer could not be read: a date's partial parts are dropped unless a part is being asked.
          const { parts, ...kept } = n!;
          return { ...untimed, node: { ...kept, noMatch: n!.noMatch + 1, ...(n!.sub && parts ? { parts } : {}) }, ...timer };
        }
        case 'noInput':
          return { ...untimed, node: { ...n!, noInput: n!.noInput + 1 }, ...timer };
        default:
          return { ...untimed, ...timer };
      }
    }
    case 'PromptReceived':
      // The user spoke: the noInput timer is off; a prompt the parsers could not read waits for the model.
      return event.data.read === 'model' ? { ...untimed, read: { promptSeq: meta.seq } } : untimed;
    case 'ValueRead': {
      const rest = untimed;
      const n = flow.node!;
      if (event.data.partial) {
        return { ...rest, node: { ...n, parts: { ...n.parts, ...(event.data.value as DateParts) } } };
      }
      const { parts: _p, sub: _s, ...node } = n;
      return { ...rest, node: { ...node, value: event.data.value } };
    }
    case 'DataConfirmed': {
      if (!event.data.flow) return flow;
      let memory = flow.memory;
      for (const [k, v] of Object.entries(event.data.data)) memory = put(memory, k, v);
      const rest = untimed;
      // The node is done; the next ask names the next node.
      const { node: _n, ...done } = rest;
      return { ...done, memory };
    }
    case 'BackendCalled': {
      const { effect: _e, ...rest } = untimed;
      const saveAs = taskField(flow, event.data.task, 'saveAs');
      const memory = event.data.status === 'ok' && typeof saveAs === 'string' ? put(flow.memory, saveAs, event.data.result ?? null) : flow.memory;
      return { ...rest, memory };
    }
    case 'FlowTransferred':
      return { ...untimed, transferred: { to: event.data.to, at: meta.at } };
    case 'FlowEnded': {
      const { node: _n, effect: _e, ...rest } = untimed;
      return { ...rest, status: 'ended', ended: { reason: event.data.reason, at: meta.at, task: event.data.task } };
    }
    default: {
      const _never: never = event;
      return _never;
    }
  }
}

/** A field of a task of the flow's own definition. */
function taskField(flow: FlowState, task: string, field: string): unknown {
  const tasks = flow.definition.tasks as Record<string, Record<string, unknown>> | undefined;
  return tasks?.[task]?.[field];
}

/** The index of a node of the current task's DDT, by name. */
function nodeIndex(flow: FlowState, name: string): number {
  const ddt = flow.task ? taskField(flow, flow.task, 'ddt') : undefined;
  const ddts = flow.definition.ddts as Record<string, { nodes: { name: string }[] }> | undefined;
  return typeof ddt === 'string' ? (ddts?.[ddt]?.nodes.findIndex((x) => x.name === name) ?? -1) : -1;
}
