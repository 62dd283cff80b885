import { EffectError } from '../actors/ports.ts';
import type { TwinField } from '../actors/ports.ts';
import { fieldSchema } from '../actors/twins.ts';

/** The JSON type of a field's value in the response schema. */
const JSON_TYPE: Record<TwinField['type'], string> = { string: 'string', email: 'string', date: 'string', number: 'number', boolean: 'boolean' };

/**
 * The structured-output format asking for `{reply, proposed}`: `proposed` has every field
 * of the twin, each its value or null (strict mode wants every property required).
 * Null when the twin collects nothing. Made once per twin's fields (it goes with every request).
 */
export function proposalFormat(fields: TwinField[]) {
  if (fields.length === 0) return null;
  let format = formats.get(fields);
  if (!format) formats.set(fields, (format = makeFormat(fields)));
  return format;
}

const formats = new WeakMap<TwinField[], ReturnType<typeof makeFormat>>();

function makeFormat(fields: TwinField[]) {
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
 * their field (others are dropped; null means "not said"). A model may wrap the JSON in a
 * code fence or be cut off mid-answer (max tokens): the reply is read out of what there
 * is, with nothing proposed. An answer that is no JSON at all is taken as plain text; one
 * that looks like JSON but holds no reply is an error, never shown to the user as is.
 */
export function readProposals(content: string, fields: TwinField[]): { text: string; proposed: Record<string, unknown> } {
  const body = /^```(?:json)?\s*([\s\S]*?)\s*(?:```)?$/i.exec(content)?.[1] ?? content;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    const partial = partialReply(body);
    if (partial) return { text: partial, proposed: {} };
    if (body.trimStart().startsWith('{')) throw new EffectError('model_bad_output', `the model's structured answer has no readable reply: ${body.slice(0, 120)}`, false);
    return { text: content, proposed: {} };
  }
  if (!json || typeof json !== 'object' || typeof (json as { reply?: unknown }).reply !== 'string') {
    if (typeof json === 'object' && json !== null) throw new EffectError('model_bad_output', `the model's structured answer has no "reply": ${body.slice(0, 120)}`, false);
    return { text: content, proposed: {} };
  }
  const { reply, proposed } = json as { reply: string; proposed?: unknown };
  const values: Record<string, unknown> = {};
  if (proposed && typeof proposed === 'object' && !Array.isArray(proposed)) {
    for (const f of fields) {
      const v = (proposed as Record<string, unknown>)[f.name];
      if (v === null || v === undefined || v === '') continue;
      const checked = schemaOf(f).safeParse(v);
      if (checked.success) values[f.name] = checked.data;
    }
  }
  return { text: reply.trim(), proposed: values };
}

const schemas = new WeakMap<TwinField, ReturnType<typeof fieldSchema>>();
/** A field's zod schema, made once per field. */
function schemaOf(f: TwinField) {
  let s = schemas.get(f);
  if (!s) schemas.set(f, (s = fieldSchema(f)));
  return s;
}

/** The `reply` string of a JSON answer that was cut off, as far as it goes; null if there is none. */
function partialReply(body: string): string | null {
  const m = /"reply"\s*:\s*"((?:[^"\\]|\\.)*)/.exec(body);
  if (!m) return null;
  // Drop an escape sequence the cut left unfinished (a lone backslash, a partial \u).
  let raw = m[1]!.replace(/\\(u[0-9a-fA-F]{0,3})?$/, '');
  for (let i = 0; i < 2; i++) {
    try {
      const text = (JSON.parse(`"${raw}"`) as string).trim();
      return text ? text : null;
    } catch {
      raw = raw.slice(0, -1);
    }
  }
  return null;
}
