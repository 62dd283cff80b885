import type { Admin } from '@platformatic/kafka';

type Nested = { message?: unknown; apiId?: unknown; type?: unknown; errors?: unknown; cause?: unknown };

/** The broker's error codes inside an error (@platformatic/kafka's apiId, kafkajs' type), each once. */
function codesOf(err: unknown, out = new Set<string>(), depth = 0): Set<string> {
  if (!err || typeof err !== 'object' || depth > 4) return out;
  const e = err as Nested;
  for (const code of [e.apiId, e.type]) if (typeof code === 'string' && /^[A-Z][A-Z_]+$/.test(code)) out.add(code);
  if (Array.isArray(e.errors)) for (const x of e.errors) codesOf(x, out, depth + 1);
  codesOf(e.cause, out, depth + 1);
  return out;
}

/**
 * A Kafka client's error as a log line says it: its message and the broker's codes under it
 * ("Received response with error while executing API OffsetCommit(v9)" alone does not say
 * that the group was rebalancing).
 */
export function kafkaErrorText(err: unknown): string {
  const message = (err as Error)?.message ?? String(err);
  const codes = [...codesOf(err)].filter((c) => !message.includes(c));
  return codes.length ? `${message} (${codes.join(', ')})` : message;
}

/** The member is not in the group (any more): another member removed it first, or it left. */
export const isUnknownMember = (err: unknown): boolean => codesOf(err).has('UNKNOWN_MEMBER_ID') || /unknown.?member/i.test((err as Error)?.message ?? '');

/**
 * Removes members from a consumer group on their behalf (LeaveGroup), through
 * @platformatic/kafka's admin (kafkajs' has no such call). One already gone counts as
 * removed: every surviving host may try to remove the same dead one.
 */
export async function removeGroupMembers(admin: Admin, groupId: string, memberIds: string[], reason: string): Promise<void> {
  if (!memberIds.length) return;
  try {
    await admin.removeMembersFromConsumerGroup({ groupId, members: memberIds.map((memberId) => ({ memberId, reason })) });
  } catch (err) {
    // The caller logs the message: with the broker's codes in it.
    if (!isUnknownMember(err)) throw Object.assign(new Error(kafkaErrorText(err), { cause: err }), { errors: (err as { errors?: unknown }).errors });
  }
}
