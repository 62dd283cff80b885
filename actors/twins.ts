import { z } from 'zod';
import type { Twin, TwinField } from './ports.ts';

export const TwinSchema = z.object({
  id: z.string().min(1).max(200),
  name: z.string().min(1).max(200),
  systemPrompt: z.string().default(''),
  model: z.string().default('gpt-4.1-nano'),
  voiceId: z.string().default('alloy'),
  fields: z.array(z.object({
    name: z.string().min(1).max(100),
    type: z.enum(['string', 'number', 'boolean', 'email', 'date']),
    description: z.string().optional(),
    required: z.boolean().optional(),
    pattern: z.string().optional(),
  })).default([]),
  /** The id of a flow of GEMELLO_FLOWS_DIR: the twin runs it (DESIGN §8). */
  flow: z.string().min(1).max(100).optional(),
});

/** The schema of what one confirm may carry, by the twin's fields (each optional: data is confirmed a few fields at a time). */
function confirmableSchema(fields: TwinField[]): z.ZodType<Record<string, unknown>> {
  const shape: Record<string, z.ZodType> = {};
  for (const f of fields) shape[f.name] = fieldSchema(f).optional();
  return z.strictObject(shape) as unknown as z.ZodType<Record<string, unknown>>;
}
const confirmable = new WeakMap<TwinField[], z.ZodType<Record<string, unknown>>>();

/**
 * What is wrong with data confirmed for a twin that declares `fields` (null: nothing): every
 * value must fit its field (type, pattern), and a field the twin does not declare is refused.
 * A twin without fields takes any data (within the conversation's limits). Checked by the
 * gateway, to answer at once, and by the actor host, which has the last word.
 */
export function confirmedDataProblem(fields: TwinField[] | undefined, data: Record<string, unknown>): string | null {
  if (!fields?.length) return null;
  let schema = confirmable.get(fields);
  if (!schema) confirmable.set(fields, (schema = confirmableSchema(fields)));
  const checked = schema.safeParse(data);
  if (checked.success) return null;
  const issue = checked.error.issues[0];
  const path = issue?.path.join('.') || (issue && 'keys' in issue ? (issue.keys as string[]).join(', ') : '') || 'data';
  return `${path}: ${issue?.message}`;
}

/** The zod schema of one field's value. */
export function fieldSchema(f: TwinField): z.ZodType {
  if (f.type === 'number') return z.number();
  if (f.type === 'boolean') return z.boolean();
  if (f.type === 'email') return z.email();
  if (f.type === 'date') return z.iso.date();
  return f.pattern ? z.string().max(10_000).regex(new RegExp(f.pattern)) : z.string().max(10_000);
}

/** The seed's twin; always in the catalog unless a file replaces it by id. */
export const DEFAULT_TWINS: Twin[] = [
  {
    id: 'warren-buffett-001',
    name: 'Warren Buffett',
    systemPrompt:
      'You are Warren Buffett, the investor and chairman of Berkshire Hathaway. Answer as he would: plain words, long-term thinking, value investing, a dry sense of humour. Keep answers short.',
    model: 'ft:gpt-4.1-nano-2025-04-14:ai4smartcity:warren-buffett:CXmgEp7Z',
    voiceId: 'onyx',
    fields: [
      { name: 'name', type: 'string', description: "the user's name" },
      { name: 'email', type: 'email', description: 'where to send the annual letter' },
      { name: 'investmentHorizonYears', type: 'number', description: 'how long the user means to hold' },
    ],
  },
];

export type TwinCatalog = {
  list(): Twin[];
  /** By id first, then by name (the seed protocol's lookup order). */
  find(id: string | undefined, name: string | undefined): Twin | undefined;
};

/** A catalog of the default twins plus those of an operator's JSON file (an array of twins). */
export function createTwinCatalog(extra: unknown[] = []): TwinCatalog {
  const byId = new Map<string, Twin>(DEFAULT_TWINS.map((t) => [t.id, t]));
  for (const [i, raw] of extra.entries()) {
    const parsed = TwinSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`twin #${i} in the twins file is invalid: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
    byId.set(parsed.data.id, parsed.data);
  }
  return {
    list: () => [...byId.values()],
    find(id, name) {
      if (id && byId.has(id)) return byId.get(id);
      if (name) for (const t of byId.values()) if (t.name === name) return t;
      return undefined;
    },
  };
}
