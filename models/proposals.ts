import type { TwinField } from '../actors/ports.ts';
import { fieldSchema } from '../actors/twins.ts';

/** The JSON type of a field's value in the response schema. */
const JSON_TYPE: Record<TwinField['type'], string> = { string: 'string', email: 'string', date: 'string', number: 'number', boolean: 'boolean' };

/**
 * The structured-output format asking for `{reply, proposed}`: `proposed` has every field
 * of the twin, each its value or null (strict mode wants every property required).
 * Null when the twin collects nothing.
 */
export function proposalFormat(fields: TwinField[]) {
  if (fields.length === 0) return null;
  const properties: Record<string, { type: [string, 'null']; description: string }> = {};
  for (const f of fields) {
    const what = f.type === 'email' ? 'an email address' : f.type === 'date' ? 'a date as YYYY-MM-DD' : `a ${f.type}`;
    properties[f.name] = { type: [JSON_TYPE[f.type], 'null'], description: `${f.description ? `${f.description}; ` : ''}${what}, or null if the user has not said` };
  }
  return {
    type: 'json_schema' as const,
    json_schema: {
      name: 'twin_reply',
      strict: true,
      schema: {
        type: 'object',
        additionalProperties: false,
        required: ['reply', 'proposed'],
        properties: {
          reply: { type: 'string', description: 'what the twin says to the user' },
          proposed: { type: 'object', additionalProperties: false, required: fields.map((f) => f.name), properties },
        },
      },
    },
  };
}

/**
 * Reads a structured answer: the reply text and the proposed values that are valid for
 * their field (others are dropped; null means "not said"). An answer that is not the
 * asked-for JSON is taken as plain text with nothing proposed.
 */
export function readProposals(content: string, fields: TwinField[]): { text: string; proposed: Record<string, unknown> } {
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch {
    return { text: content, proposed: {} };
  }
  if (!json || typeof json !== 'object' || typeof (json as { reply?: unknown }).reply !== 'string') return { text: content, proposed: {} };
  const { reply, proposed } = json as { reply: string; proposed?: unknown };
  const values: Record<string, unknown> = {};
  if (proposed && typeof proposed === 'object' && !Array.isArray(proposed)) {
    for (const f of fields) {
      const v = (proposed as Record<string, unknown>)[f.name];
      if (v === null || v === undefined || v === '') continue;
      const checked = fieldSchema(f).safeParse(v);
      if (checked.success) values[f.name] = checked.data;
    }
  }
  return { text: reply.trim(), proposed: values };
}
