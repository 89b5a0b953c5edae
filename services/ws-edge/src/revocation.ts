import { z } from 'zod';
import type { ParsedChannel } from '@alarmcast/contracts';
import { parseChannel } from '@alarmcast/contracts';
import {
  findCampaignTenants,
  findUsersAccess,
  findVisibleDevices,
  type PgPool,
  type UserAccess,
} from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';
import { mayRead } from './channel-auth.js';
import { ExpiryQueue, type Expiring } from './expiry-queue.js';
import { SmallSet } from './small-set.js';

/**
 * Live revocation, the edge's half: who each local subscription belongs to, until when, and ending the ones
 * whose user may no longer read them. The change itself is noticed by AccessWatcher (access-watcher.ts).
 *
 * The owner of a subscription travels with it: /broadcasting/auth answers with `channel_data` =
 * `{"user_id","exp","iat"}` and signs `socket_id:channel:channel_data`, which pusher-js sends back verbatim
 * in `pusher:subscribe` (for any channel whose auth answer has channel_data). So the edge holding the socket
 * knows the user and the JWT's expiry without asking the edge that answered the auth request, or anyone.
 */

/** `channel_data` as /broadcasting/auth signs it. Times are JWT-style seconds since the epoch. */
export const OwnerData = z.object({
  user_id: z.number().int().min(1).max(2_147_483_647),
  /** the `exp` of the JWT the subscription was authorized with */
  exp: z.number().int().min(1),
  /** when the auth answer was signed */
  iat: z.number().int().min(1),
});
export type OwnerData = z.infer<typeof OwnerData>;

/**
 * How old a signed auth answer may be when its `pusher:subscribe` arrives. pusher-js subscribes the moment
 * the answer comes back, so a minute leaves room for slow networks and clock skew between edges (NTP keeps
 * them within milliseconds). The bound is what makes an answer obtained before a revocation useless after
 * it: see `recentWindowMs`.
 */
export const SIGNED_AUTH_MAX_AGE_S = 60;

export const REVOCATION_MESSAGES = {
  ownerRequired:
    'A tenant channel subscription needs the channel_data that /broadcasting/auth returns; authorize again',
  badOwnerData: 'Invalid channel_data; authorize again',
  staleAuth: 'Subscription authorization is too old; authorize again',
  expiredAuth: 'Subscription authorization has expired; refresh the token and authorize again',
  /** `pusher:error` and close reason when the user may read nothing any more (close 4009) */
  accessRevoked: 'Access revoked',
  /** `pusher:error` and `pusher:subscription_error` when one channel is lost */
  channelRevoked: (channel: string): string => `Access to ${channel} was revoked`,
  /** close reason at the JWT's expiry (close 4203) */
  tokenExpired: 'Token expired, reconnect and authorize again',
} as const;

/** Who a subscription belongs to, and until when (ms since the epoch; null: no known expiry). */
export interface Grant {
  userId: number;
  expiresAtMs: number | null;
}

export type GrantRefusal = 'owner_required' | 'bad_owner_data' | 'stale_auth' | 'expired_auth';

/** The `channel_data` that /broadcasting/auth signs for a user whose JWT expires at `exp`. */
export function encodeOwnerData(userId: number, exp: number, nowMs: number): string {
  const data: OwnerData = { user_id: userId, exp, iat: Math.floor(nowMs / 1000) };
  return JSON.stringify(data);
}

/**
 * The grant of a subscription whose signature has been verified (over `channel_data` when it has one).
 *
 * Without `channel_data` (signed by another holder of the app secret, e.g. a Laravel app that signs
 * subscriptions itself, as Pusher allows): a `private-user.{id}` subscription belongs to that user, the only
 * one who may read it, with no known expiry; a `private-tenant.{id}` subscription is refused, since nothing
 * could end it when its unknown user loses the tenant.
 */
export function grantOf(
  channel: ParsedChannel,
  channelData: string | undefined,
  nowMs: number,
): Grant | GrantRefusal {
  if (channelData === undefined) {
    return channel.kind === 'user' ? { userId: channel.userId, expiresAtMs: null } : 'owner_required';
  }
  let json: unknown;
  try {
    json = JSON.parse(channelData);
  } catch {
    return 'bad_owner_data';
  }
  const parsed = OwnerData.safeParse(json);
  if (!parsed.success) return 'bad_owner_data';
  const { user_id: userId, exp, iat } = parsed.data;
  // /broadcasting/auth never signs this; another secret holder that does has made a mistake worth refusing.
  if (channel.kind === 'user' && channel.userId !== userId) return 'bad_owner_data';
  const nowS = nowMs / 1000;
  if (exp <= nowS) return 'expired_auth';
  if (Math.abs(nowS - iat) > SIGNED_AUTH_MAX_AGE_S) return 'stale_auth';
  return { userId, expiresAtMs: exp * 1000 };
}

/** A local socket as revocation sees it (PusherConnection). */
export interface RevocableMember {
  readonly socketId: string;
  /** the channels this socket holds on behalf of `userId` */
  channelsOf(userId: number): string[];
  /** ends one subscription: nothing more of the channel reaches the socket, which stays open */
  revokeChannel(channel: string): void;
  /** the user may read nothing any more: `pusher:error` then close 4009 (pusher-js does not reconnect) */
  revokeAll(): void;
  /** a subscription's JWT expired: close 4203 (pusher-js reconnects at once and authorizes again) */
  expire(): void;
}

export type RevocationKind = 'channel' | 'connection';

export interface RevocationOptions {
  pool: PgPool;
  log: Logger;
  onRevoked?: (kind: RevocationKind, userId: number) => void;
  /**
   * How long after an access change of a user each new subscription of that user is checked against the
   * database once more. An auth answer read before the change can reach the edge after the change's
   * re-check has run; it is at most SIGNED_AUTH_MAX_AGE_S old (else refused), so twice that covers it.
   * @defaultValue 2 × SIGNED_AUTH_MAX_AGE_S
   */
  recentWindowMs?: number;
  /** @defaultValue 1000 ms between attempts of a re-check that failed (Postgres away) */
  retryMs?: number;
  /**
   * A re-check query not answered within this counts as failed and is retried (on another pooled
   * connection): a connection cut by a partition hangs without an error until TCP gives up, minutes later.
   * @defaultValue 5000 ms
   */
  queryTimeoutMs?: number;
}

/**
 * This node's index of subscription owners (user → local sockets) and the re-check that ends what a user
 * may no longer read, with the same rule as channel auth (`mayRead`). Re-checks of many users are batched
 * into one query each 1000 users; a failed re-check is retried until it succeeds, so a notification is never
 * dropped because Postgres blinked.
 */
export class Revocation {
  private readonly byUser = new Map<number, SmallSet<RevocableMember>>();
  /** every local socket's earliest JWT expiry, on one timer (expiry-queue.ts) */
  readonly expiries = new ExpiryQueue<SocketGrants>((grants) => grants.member.expire());
  /** users whose access changed recently → when; in time order (re-set entries move to the end) */
  private readonly recent = new Map<number, number>();
  private readonly pending = new Set<number>();
  private flushing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly recentWindowMs: number;
  private readonly retryMs: number;

  constructor(private readonly options: RevocationOptions) {
    this.recentWindowMs = options.recentWindowMs ?? 2 * SIGNED_AUTH_MAX_AGE_S * 1000;
    this.retryMs = options.retryMs ?? 1000;
  }

  /** A socket now holds a subscription of `userId`; re-checked at once if their access changed recently. */
  granted(userId: number, member: RevocableMember): void {
    let members = this.byUser.get(userId);
    if (!members) this.byUser.set(userId, (members = new SmallSet()));
    members.add(member);
    const changedAt = this.recent.get(userId);
    if (changedAt !== undefined && Date.now() - changedAt <= this.recentWindowMs) this.recheck([userId]);
  }

  /** The socket holds no subscription of `userId` any more. */
  released(userId: number, member: RevocableMember): void {
    const members = this.byUser.get(userId);
    if (!members?.delete(member)) return;
    if (members.size === 0) this.byUser.delete(userId);
  }

  /** Users whose access may have changed (a notification): their local subscriptions are re-checked. */
  accessChanged(userIds: readonly number[]): void {
    const now = Date.now();
    for (const id of userIds) {
      this.recent.delete(id);
      this.recent.set(id, now);
    }
    for (const [id, at] of this.recent) {
      if (now - at <= this.recentWindowMs) break;
      this.recent.delete(id);
    }
    this.recheck(userIds);
  }

  /**
   * A device moved to another tenant: every local owner of a `private-device.{id}` subscription of it is
   * re-checked (rare enough that walking the local owners is cheaper than an index kept for it).
   */
  deviceChanged(deviceId: number): void {
    const channel = `private-device.${deviceId}`;
    const users: number[] = [];
    for (const [userId, members] of this.byUser) {
      for (const m of members) {
        if (m.channelsOf(userId).includes(channel)) {
          users.push(userId);
          break;
        }
      }
    }
    this.accessChanged(users);
  }

  /** Every local subscription is re-checked: after the LISTEN connection was down, changes may be missed. */
  recheckAll(): void {
    this.recheck([...this.byUser.keys()]);
  }

  /** Users with at least one local subscription. */
  get ownerCount(): number {
    return this.byUser.size;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
  }

  private recheck(userIds: readonly number[]): void {
    // Users without a local socket cost nothing here: that is most notifications on most edges.
    for (const id of userIds) if (this.byUser.has(id)) this.pending.add(id);
    if (this.pending.size > 0 && !this.flushing && this.retryTimer === undefined) void this.flush();
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.size > 0 && !this.closed) {
        const batch = [...this.pending].slice(0, 1000);
        for (const id of batch) this.pending.delete(id);
        let access: Map<number, UserAccess>;
        let visible: Set<string>;
        let campaignTenants: Map<string, number>;
        let timer: NodeJS.Timeout | undefined;
        // The device channels these users hold here, whose visibility is looked up with their access.
        const devicePairs: { userId: number; deviceId: number }[] = [];
        const campaignIds = new Set<string>();
        for (const userId of batch) {
          const channels = new Set<string>();
          for (const m of this.byUser.get(userId) ?? [])
            for (const c of m.channelsOf(userId)) channels.add(c);
          for (const c of channels) {
            const parsed = parseChannel(c);
            if (parsed?.kind === 'device') devicePairs.push({ userId, deviceId: parsed.deviceId });
            // A campaign's tenant never changes, but the user's may: looked up to compare with it.
            if (parsed?.kind === 'campaign') campaignIds.add(parsed.campaignId);
          }
        }
        try {
          [access, visible, campaignTenants] = await Promise.race([
            Promise.all([
              findUsersAccess(this.options.pool, batch),
              findVisibleDevices(this.options.pool, devicePairs),
              findCampaignTenants(this.options.pool, [...campaignIds]),
            ]),
            new Promise<never>((_, reject) => {
              timer = setTimeout(
                () => reject(new Error('access re-check timed out')),
                this.options.queryTimeoutMs ?? 5000,
              );
            }),
          ]);
        } catch (err) {
          this.options.log.warn({ err, users: batch.length }, 'access re-check failed, retrying');
          for (const id of batch) this.pending.add(id);
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            if (!this.flushing) void this.flush();
          }, this.retryMs);
          this.retryTimer.unref();
          return;
        } finally {
          clearTimeout(timer);
        }
        for (const id of batch) this.apply(id, access.get(id) ?? null, visible, campaignTenants);
      }
    } finally {
      this.flushing = false;
    }
  }

  private apply(
    userId: number,
    access: UserAccess | null,
    visible: ReadonlySet<string>,
    campaignTenants: ReadonlyMap<string, number>,
  ): void {
    for (const member of [...(this.byUser.get(userId) ?? [])]) {
      if (!access?.active) {
        // Deactivated or deleted: nothing on this socket is theirs to read any more.
        member.revokeAll();
        this.options.onRevoked?.('connection', userId);
        continue;
      }
      for (const channel of member.channelsOf(userId)) {
        const parsed = parseChannel(channel);
        const deviceVisible = parsed?.kind === 'device' && visible.has(`${userId}:${parsed.deviceId}`);
        const campaignTenant =
          parsed?.kind === 'campaign' ? (campaignTenants.get(parsed.campaignId) ?? null) : null;
        if (parsed && mayRead(userId, access, parsed, deviceVisible, campaignTenant)) continue;
        member.revokeChannel(channel);
        this.options.onRevoked?.('channel', userId);
      }
    }
  }
}

/**
 * One socket's grants: channel → owner and expiry. Keeps the socket registered in Revocation under each
 * owner it holds subscriptions for, and queued in Revocation's expiry queue at the earliest expiry among
 * them: at that moment the socket is closed with 4203, and pusher-js reconnects and authorizes every channel
 * again with whatever token the application supplies by then.
 */
export class SocketGrants implements Expiring {
  private readonly grants = new Map<string, Grant>();
  /** kept by Revocation's ExpiryQueue */
  expiryAtMs = Infinity;
  expiryIndex = -1;

  constructor(
    readonly member: RevocableMember,
    private readonly revocation: Revocation,
  ) {}

  add(channel: string, grant: Grant): void {
    this.remove(channel);
    this.grants.set(channel, grant);
    this.revocation.granted(grant.userId, this.member);
    this.schedule();
  }

  remove(channel: string): void {
    const grant = this.grants.get(channel);
    if (!grant) return;
    this.grants.delete(channel);
    if (this.channelsOf(grant.userId).length === 0) this.revocation.released(grant.userId, this.member);
    this.schedule();
  }

  clear(): void {
    for (const channel of [...this.grants.keys()]) this.remove(channel);
    this.revocation.expiries.remove(this);
  }

  channelsOf(userId: number): string[] {
    const channels: string[] = [];
    for (const [channel, grant] of this.grants) if (grant.userId === userId) channels.push(channel);
    return channels;
  }

  private schedule(): void {
    let earliest = Infinity;
    for (const g of this.grants.values()) {
      if (g.expiresAtMs !== null && g.expiresAtMs < earliest) earliest = g.expiresAtMs;
    }
    if (earliest !== this.expiryAtMs) this.revocation.expiries.set(this, earliest);
  }
}
