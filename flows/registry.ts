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
      const r = compileFlow(state.definition, { ...env, backends: backendsOf(state.definition, env), email: true, sms: true });
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
