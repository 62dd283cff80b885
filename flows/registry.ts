import { compileFlow } from './compile.ts';
import type { CompiledFlow, FlowEnvironment } from './compile.ts';
import type { FlowState } from './state.ts';

/**
 * The flows a deployment runs (the current version of each, by id) and every version a
 * conversation in flight may still need: a conversation finishes on the version it
 * started with, whose definition its FlowStarted carries.
 */
export type FlowRegistry = {
  /** The current version of a flow, or undefined. */
  current(flowId: string): CompiledFlow | undefined;
  /** The version a conversation runs: from the deployment, or compiled from the definition it started with. */
  of(flow: FlowState): CompiledFlow;
  list(): CompiledFlow[];
};

export function createFlowRegistry(flows: CompiledFlow[], env: FlowEnvironment): FlowRegistry {
  const byId = new Map(flows.map((f) => [f.id, f]));
  const byVersion = new Map(flows.map((f) => [f.version, f]));
  return {
    current: (id) => byId.get(id),
    list: () => [...byId.values()],
    of(state) {
      const known = byVersion.get(state.version);
      if (known) return known;
      // A version no longer deployed: it compiled when the conversation started, so the
      // backends it names are checked at call time, not here.
      const r = compileFlow(asRecorded(state.definition), { ...env, backends: backendsOf(state.definition, env), email: true, sms: true });
      if (!r.ok) throw new Error(`flow ${state.flowId} version ${state.version} no longer compiles: ${r.errors.map((e) => `${e.path} ${e.message}`).join('; ')}`);
      // The version is the one recorded, even if this build hashes its defaults differently.
      const flow = { ...r.flow, version: state.version };
      byVersion.set(state.version, flow);
      return flow;
    },
  };
}

function backendsOf(definition: Record<string, unknown>, env: FlowEnvironment): string[] {
  const tasks = Object.values((definition.tasks ?? {}) as Record<string, { backend?: unknown }>);
  return [...new Set([...env.backends, ...tasks.map((t) => t.backend).filter((b): b is string => typeof b === 'string')])];
}

/**
 * A definition as a conversation recorded it, read with the rules it compiled under: builds
 * before 2026-12-03 took a comparison's unknown keys silently and compared a missing `value`
 * as null (a misspelt "vaule" did that). Refused for new flows now, such a definition still
 * runs its conversations in flight as it did, instead of failing each of their prompts.
 */
export function asRecorded(definition: Record<string, unknown>): Record<string, unknown> {
  const tasks = definition.tasks;
  if (!tasks || typeof tasks !== 'object') return definition;
  const comparison = (c: unknown) => {
    if (!c || typeof c !== 'object') return c;
    const { var: v, op, value } = c as Record<string, unknown>;
    return { var: v, op, ...(value !== undefined ? { value } : op !== 'exists' ? { value: null } : {}) };
  };
  const condition = (w: unknown) => {
    if (!w || typeof w !== 'object' || Array.isArray(w)) return w;
    const c = w as Record<string, unknown>;
    if ('var' in c) return comparison(c);
    if (Array.isArray(c.all)) return { all: c.all.map(comparison) };
    if (Array.isArray(c.any)) return { any: c.any.map(comparison) };
    return w;
  };
  const read = Object.fromEntries(Object.entries(tasks as Record<string, unknown>).map(([id, t]) => {
    const task = t as Record<string, unknown> | null;
    return [id, task && task.type === 'condition' ? { ...task, when: condition(task.when) } : t];
  }));
  return { ...definition, tasks: read };
}
