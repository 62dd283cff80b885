import type { Db, Query } from '../stores/sql.ts';

/** The read-only role analysts are given (directly, or as a member: GRANT gemello_analyst TO alice). */
export const ANALYST_ROLE = 'gemello_analyst';

/** Tables that are not read models: the data keys' cache (wrapped keys) and how far it is synced; the caller's kept voice (sealed; nobody's to study). */
export const NOT_FOR_ANALYSTS = ['conversation_keys', 'key_sync', 'voice_clips', 'voice_segments'];

/**
 * Lets `gemello_analyst` read every read-model table and view of the schema, and nothing
 * else: no write, and no table that holds anything of the data keys. Run after every
 * migration and rebuild (both make tables); idempotent. PGlite (embedded) has no analysts.
 */
export async function grantAnalysts(q: Query, kind: Db['kind']): Promise<void> {
  if (kind !== 'postgres') return;
  const revoke = NOT_FOR_ANALYSTS.map((t) => `EXECUTE format('REVOKE ALL ON %I.${t} FROM ${ANALYST_ROLE}', s);`).join('\n    ');
  await q.exec(`DO $$
  DECLARE s text := current_schema();
  BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${ANALYST_ROLE}') THEN
      CREATE ROLE ${ANALYST_ROLE} NOLOGIN;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${ANALYST_ROLE}', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO ${ANALYST_ROLE}', s);
    ${revoke}
  END $$`);
}
