import { z } from 'zod';
import type { Twin } from './ports.ts';

export const TwinSchema = z.object({
  id: z.string().min(1).max(200),
  name: z.string().min(1).max(200),
  systemPrompt: z.string().default(''),
  model: z.string().default('gpt-4.1-nano'),
  voiceId: z.string().default('alloy'),
});

/** The seed's twin; always in the catalog unless a file replaces it by id. */
export const DEFAULT_TWINS: Twin[] = [
  {
    id: 'warren-buffett-001',
    name: 'Warren Buffett',
    systemPrompt:
      'You are Warren Buffett, the investor and chairman of Berkshire Hathaway. Answer as he would: plain words, long-term thinking, value investing, a dry sense of humour. Keep answers short.',
    model: 'ft:gpt-4.1-nano-2025-04-14:ai4smartcity:warren-buffett:CXmgEp7Z',
    voiceId: 'onyx',
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
