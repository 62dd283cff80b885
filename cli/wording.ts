/** How the CLI words counts: "1 record", "2 records", "0 records", as a person writes them. */
export const plural = (n: number, one: string, many = `${one}s`): string => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

/**
 * What copying a topic into its table read (a key sync, the voice topic): the records new to
 * the table, or, when none were, that it already held every one (not "0 records in the cache").
 */
export const copied = (n: number, topic: string, table: string): string =>
  n > 0 ? `${plural(n, 'record')} of ${topic} read into ${table}` : `${table} already held every record of ${topic}`;
