// Offline validation of Kubernetes objects against the API's own OpenAPI schemas, as compiled
// by the `kubernetes-models` package (types, required fields, enums, formats), made strict:
// the compiled validators ignore fields the schema does not name, so a misspelt field
// (`readinesProbe`) would pass. We hand the validator a proxy of the object and report every
// field it never looked at; objects whose keys it enumerates are maps (labels, limits…).

type Tracked = { path: string; keys: string[]; read: Set<string>; enumerated: boolean; array: boolean };

function track(value: unknown, path: string, seen: Tracked[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  const array = Array.isArray(value);
  const rec: Tracked = { path, keys: Object.keys(value), read: new Set(), enumerated: false, array };
  seen.push(rec);
  const copy = array
    ? (value as unknown[]).map((v, i) => track(v, `${path}/${i}`, seen))
    : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, track(v, `${path}/${k}`, seen)]));
  return new Proxy(copy as object, {
    get(t, k, r) {
      if (typeof k === 'string') rec.read.add(k);
      return Reflect.get(t, k, r);
    },
    has(t, k) {
      if (typeof k === 'string') rec.read.add(k);
      return Reflect.has(t, k);
    },
    ownKeys(t) {
      rec.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

/** The schema module's name for an apiVersion and kind: apps/v1 Deployment → IoK8sApiAppsV1Deployment. */
export function schemaName(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') as [string, string] : ['core', apiVersion];
  const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  return `IoK8sApi${cap(group.split('.')[0]!)}${cap(version)}${kind}`;
}

type Validate = ((data: unknown) => boolean) & { errors?: Array<{ instancePath: string; keyword: string; params: unknown; message?: string }> | null };

/** Every problem with a Kubernetes object: schema errors and fields the schema does not know. Empty: valid. */
export async function validateObject(obj: { apiVersion?: string; kind?: string }): Promise<string[]> {
  if (!obj.apiVersion || !obj.kind) return ['apiVersion and kind are required'];
  let validate: Validate;
  try {
    ({ validate } = (await import(`kubernetes-models/_schemas/${schemaName(obj.apiVersion, obj.kind)}`)) as { validate: Validate });
  } catch {
    return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  const seen: Tracked[] = [];
  const problems: string[] = [];
  if (!validate(track(obj, '', seen))) for (const e of validate.errors ?? []) problems.push(`${e.instancePath || '/'}: ${e.message ?? `${e.keyword} ${JSON.stringify(e.params)}`}`);
  const unknown: string[] = [];
  for (const r of seen) {
    // Below an unknown field, everything is unknown: name the field once.
    if (r.array || r.enumerated || unknown.some((u) => r.path.startsWith(`${u}/`))) continue;
    for (const k of r.keys) if (!r.read.has(k)) unknown.push(`${r.path}/${k}`);
  }
  for (const u of unknown) problems.push(`${u}: unknown field`);
  return problems;
}
