import type { ConversationState } from './state.ts';
import type { FlowSetting } from './decide.ts';
import type { ReplyModel, TwinField } from './ports.ts';
import type { TwinCatalog } from './twins.ts';

const FIELD_TYPE: Record<string, TwinField['type']> = { date: 'date', number: 'number', email: 'email' };

/**
 * The model's reading of a prompt for the data node a flow asks about, through the
 * structured proposals the model already makes for a twin's fields: the twin is shown
 * with that one field, and what it proposes for it is the reading (null: nothing).
 */
export async function readWithModel(flows: { setting: FlowSetting; model: ReplyModel; catalog: TwinCatalog }, state: ConversationState, promptSeq: number): Promise<unknown> {
  const fs = state.flow!;
  const flow = flows.setting.of(fs);
  const task = fs.task ? flow.byId[fs.task] : undefined;
  if (!task || task.type !== 'getData' || !fs.node) return null;
  const node = flow.ddts[task.ddt]!.nodes[fs.node.index]!;
  const twin = state.twin ? flows.catalog.find(state.twin.id, undefined) : undefined;
  if (!twin) return null;
  const prompt = state.messages.find((m) => m.seq === promptSeq);
  if (!prompt) return null;
  const asked = [...state.messages].reverse().find((m) => m.role === 'assistant' && m.seq < promptSeq);
  const field: TwinField = { name: node.name, type: FIELD_TYPE[node.type] ?? 'string', description: node.ask, ...(node.pattern ? { pattern: node.pattern } : {}) };
  const reply = await flows.model.reply({ twin: { ...twin, fields: [field] }, history: [...(asked ? [asked] : []), prompt], confirmedData: {} });
  return reply.proposed?.[node.name] ?? null;
}
