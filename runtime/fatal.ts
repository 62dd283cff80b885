/** Errors whose message says all an operator needs: printed alone, without a stack trace. */
const PLAIN = new Set(['data_dir_locked', 'read_model_of_another_log', 'bad_config', 'bad_master_key', 'flows_invalid', 'backend_unreachable', 'cannot_listen', 'schema_missing']);

/** Ends the process for an error at start: a known one as one line, anything else with its stack. */
export function exitOnStartError(err: unknown): never {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && PLAIN.has(code)) console.error(`gemello: ${(err as Error).message}`);
  else console.error('gemello: could not start:', err);
  process.exit(1);
}
