/**
 * Pusher channel names. `private-user.{id}` carries one user's alarms and personal events;
 * `private-tenant.{id}` carries tenant-wide operational broadcasts (and the tenant's device summary);
 * `private-device.{id}` carries one device's live status (a state channel: see STATE_EVENT_CATALOGUE). Ids
 * are decimal database ids.
 */
export const userChannel = (userId: number | string): string => `private-user.${userId}`;
export const tenantChannel = (tenantId: number | string): string => `private-tenant.${tenantId}`;
export const deviceChannel = (deviceId: number | string): string => `private-device.${deviceId}`;

export type ParsedChannel =
  | { kind: 'user'; userId: number }
  | { kind: 'tenant'; tenantId: number }
  | { kind: 'device'; deviceId: number };

const CHANNEL = /^private-(user|tenant|device)\.([1-9]\d{0,9})$/;

/** Channels alarmcast knows how to authorize; anything else is null (and refused). */
export function parseChannel(name: string): ParsedChannel | null {
  const m = CHANNEL.exec(name);
  if (!m) return null;
  const id = Number(m[2]);
  if (id > 2_147_483_647) return null;
  switch (m[1]) {
    case 'user':
      return { kind: 'user', userId: id };
    case 'tenant':
      return { kind: 'tenant', tenantId: id };
    default:
      return { kind: 'device', deviceId: id };
  }
}

/** Pusher's own limit on channel names (200 chars of `[A-Za-z0-9_\-=@,.;]`). */
export const PUSHER_CHANNEL_NAME = /^[A-Za-z0-9_\-=@,.;]{1,200}$/;
