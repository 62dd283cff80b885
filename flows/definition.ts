import { z } from 'zod';

/**
 * A flow definition as a project writes it (shared/examples/onboarding.flow.json is the
 * reference): tasks joined by `next`, condition branches, `onError`, DDTs with nodes and
 * sub-data, texts templated from memory with `{{path}}`. Validated here for shape only;
 * the compiler checks that it hangs together.
 */
const id = z.string().min(1).max(100);
const text = z.string().min(1).max(4_000);

const Comparison = z.strictObject({
  var: z.string().min(1),
  op: z.enum(['==', '!=', '<', '<=', '>', '>=', 'exists']),
  value: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional(),
}).refine((c) => c.op === 'exists' || c.value !== undefined, { message: 'a comparison needs a value (only op "exists" has none)', path: ['value'] });
const branches = [Comparison, z.strictObject({ all: z.array(Comparison).min(1) }), z.strictObject({ any: z.array(Comparison).min(1) })] as const;
/**
 * One comparison, or all / any of several. A condition that fits none is told by the branch
 * its keys choose (`all`, `any`, else a comparison), at the path within it: a union's own
 * error says only "Invalid input".
 */
export const Condition = z.union(branches, {
  error: (issue) => {
    const input = issue.input as Record<string, unknown> | null;
    const chosen = typeof input !== 'object' || input === null || Array.isArray(input) ? -1 : 'all' in input ? 1 : 'any' in input ? 2 : 0;
    const inner = chosen >= 0 ? (issue as { errors?: z.core.$ZodIssue[][] }).errors?.[chosen]?.[0] : undefined;
    if (!inner) return 'a condition is {"var","op","value"}, {"all":[…]} or {"any":[…]}';
    const at = inner.path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('');
    return at ? `${at.replace(/^\./, '')}: ${inner.message}` : inner.message;
  },
});
export type Condition = z.infer<typeof Condition>;
export type Comparison = z.infer<typeof Comparison>;

const say = z.strictObject({ type: z.literal('say'), text, next: id });
const getData = z.strictObject({ type: z.literal('getData'), ddt: id, next: id, onError: id.optional() });
const condition = z.strictObject({ type: z.literal('condition'), when: Condition, then: id, else: id });
const backendCall = z.strictObject({
  type: z.literal('backendCall'),
  backend: id,
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('POST'),
  path: z.string().startsWith('/').max(2_000),
  body: z.unknown().optional(),
  saveAs: id.optional(),
  /** Per attempt. */
  timeoutMs: z.number().int().positive().max(120_000).default(5_000),
  /** Attempts after the first, on a network error, a timeout, 429 or 5xx. */
  retries: z.number().int().min(0).max(10).default(2),
  onError: id.optional(),
  next: id,
});
const sendEmail = z.strictObject({ type: z.literal('sendEmail'), to: text, subject: text, text, next: id, onError: id.optional() });
const sendSms = z.strictObject({ type: z.literal('sendSms'), to: text, text, next: id, onError: id.optional() });
const transfer = z.strictObject({ type: z.literal('transfer'), to: id, text: text.optional() });
const end = z.strictObject({ type: z.literal('end'), text: text.optional() });

export const TaskDef = z.discriminatedUnion('type', [say, getData, condition, backendCall, sendEmail, sendSms, transfer, end]);
export type TaskDef = z.infer<typeof TaskDef>;
export type TaskType = TaskDef['type'];

export const NODE_TYPES = ['string', 'name', 'date', 'number', 'email', 'phone', 'pattern'] as const;
export type NodeType = (typeof NODE_TYPES)[number];

const SubData = z.strictObject({ name: z.enum(['day', 'month', 'year']), ask: text });

export const NodeDef = z.strictObject({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a node name is a plain identifier'),
  type: z.enum(NODE_TYPES),
  ask: text,
  /** `{{value}}` is the value read; without it the value is taken as said. */
  confirm: text.optional(),
  subData: z.array(SubData).optional(),
  noMatch: z.array(text).default([]),
  noInput: z.array(text).default([]),
  /** How many noMatch (and, apart, noInput) turns the node takes before it gives up. */
  maxRetries: z.number().int().min(0).max(20).default(3),
  /** For `pattern` nodes (and to constrain strings): a regular expression the value matches. */
  pattern: z.string().max(500).optional(),
  /** Seconds of silence before the noInput prompt (default: the flow's, else the deployment's). */
  noInputSec: z.number().positive().max(86_400).optional(),
  /** Whether the model may read the value when the parsers find nothing (default true). */
  model: z.boolean().default(true),
});
export type NodeDef = z.infer<typeof NodeDef>;

export const DdtDef = z.strictObject({ nodes: z.array(NodeDef).min(1) });

export const FlowDef = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'a flow id is letters, digits, _ . -'),
  title: z.string().max(200).optional(),
  language: z.enum(['it', 'en']).default('en'),
  start: id,
  noInputSec: z.number().positive().max(86_400).optional(),
  tasks: z.record(id, TaskDef),
  ddts: z.record(id, DdtDef).default({}),
});
export type FlowDef = z.infer<typeof FlowDef>;
