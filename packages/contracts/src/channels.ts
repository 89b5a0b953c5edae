/**
 * Pusher channel names. `private-user.{id}` carries one user's alarms and personal events;
 * `private-tenant.{id}` carries tenant-wide operational broadcasts. Ids are decimal database ids.
 */
export const userChannel = (userId: number | string): string => `private-user.${userId}`;
export const tenantChannel = (tenantId: number | string): string => `private-tenant.${tenantId}`;

export type ParsedChannel = { kind: 'user'; userId: number } | { kind: 'tenant'; tenantId: number };

const CHANNEL = /^private-(user|tenant)\.([1-9]\d{0,9})$/;

/** Channels alarmcast knows how to authorize; anything else is null (and refused). */
export function parseChannel(name: string): ParsedChannel | null {
  const m = CHANNEL.exec(name);
  if (!m) return null;
  const id = Number(m[2]);
  if (id > 2_147_483_647) return null;
  return m[1] === 'user' ? { kind: 'user', userId: id } : { kind: 'tenant', tenantId: id };
}

/** Pusher's own limit on channel names (200 chars of `[A-Za-z0-9_\-=@,.;]`). */
export const PUSHER_CHANNEL_NAME = /^[A-Za-z0-9_\-=@,.;]{1,200}$/;
