import {
  PreferenceRules,
  TenantPreferences,
  compilePreferences,
  type CompiledPreferences,
} from '@alarmcast/contracts';
import { loadPreferenceDocuments, type BroadcastPlan, type PgPool } from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';

/**
 * The resolver's compiled preferences, keyed by the documents' versions. A plan carries the version of
 * every recipient's rules and of the tenant's document (outbox.ts), so a broadcast costs no preference query
 * while they are unchanged; a changed version (a PUT bumps it) loads just the changed documents, in one
 * query, before this event is evaluated: a change applies from the next event on, on every resolver.
 */
export class PreferenceCache {
  private readonly tenants = new Map<
    number,
    { version: number; doc: TenantPreferences | null; base: CompiledPreferences }
  >();
  private readonly users = new Map<number, { version: number; doc: PreferenceRules | null }>();
  private readonly compiled = new Map<
    number,
    { tenantId: number; tenantVersion: number; userVersion: number; prefs: CompiledPreferences }
  >();

  constructor(
    private readonly pool: PgPool,
    private readonly log: Logger,
    /** compiled users kept before the cache starts over @defaultValue 1,000,000 */
    private readonly maxUsers = 1_000_000,
  ) {}

  /** Brings the cache up to the plan's versions; returns each recipient's compiled preferences. */
  async forPlan(plan: BroadcastPlan): Promise<(userId: number) => CompiledPreferences> {
    const tenantVersion = plan.tenantPreferenceVersion;
    const staleTenant = (this.tenants.get(plan.tenantId)?.version ?? -1) !== tenantVersion;
    const staleUsers: number[] = [];
    for (const [user, version] of plan.preferenceVersions)
      if (this.users.get(user)?.version !== version) staleUsers.push(user);
    if (staleUsers.length > 0 || (staleTenant && tenantVersion > 0)) {
      if (this.users.size + staleUsers.length > this.maxUsers) {
        this.users.clear();
        this.compiled.clear();
      }
      const loaded = await loadPreferenceDocuments(
        this.pool,
        staleTenant && tenantVersion > 0 ? plan.tenantId : null,
        staleUsers,
      );
      if (staleTenant && tenantVersion > 0) this.setTenant(plan.tenantId, loaded.tenant);
      for (const user of staleUsers) {
        const stored = loaded.users.get(user);
        // Deleted between the plan and this query: no rules (version 0 is never stored).
        this.users.set(user, {
          version: stored?.version ?? 0,
          doc: stored ? this.valid(PreferenceRules, stored.doc, `user ${user}`) : null,
        });
      }
    }
    if (staleTenant && tenantVersion === 0) this.setTenant(plan.tenantId, null);
    const tenant = this.tenants.get(plan.tenantId)!;
    return (userId) => {
      const user = plan.preferenceVersions.has(userId) ? this.users.get(userId) : undefined;
      if (!user?.doc) return tenant.base;
      // Per recipient and event: compared as numbers (no key string built per call).
      const hit = this.compiled.get(userId);
      if (
        hit !== undefined &&
        hit.userVersion === user.version &&
        hit.tenantVersion === tenant.version &&
        hit.tenantId === plan.tenantId
      )
        return hit.prefs;
      const prefs = compilePreferences(tenant.doc, user.doc);
      this.compiled.set(userId, {
        tenantId: plan.tenantId,
        tenantVersion: tenant.version,
        userVersion: user.version,
        prefs,
      });
      return prefs;
    };
  }

  private setTenant(tenantId: number, stored: { version: number; doc: unknown } | null): void {
    const doc = stored ? this.valid(TenantPreferences, stored.doc, `tenant ${tenantId}`) : null;
    this.tenants.set(tenantId, { version: stored?.version ?? 0, doc, base: compilePreferences(doc, null) });
  }

  /**
   * Documents are validated when written through the API; one written into the table by other means and
   * not valid is ignored (the built-in defaults apply), and logged.
   */
  private valid<T>(
    schema: { safeParse: (v: unknown) => { success: true; data: T } | { success: false } },
    doc: unknown,
    whose: string,
  ): T | null {
    const parsed = schema.safeParse(doc);
    if (parsed.success) return parsed.data;
    this.log.warn({ whose }, 'stored preferences are not valid: ignored');
    return null;
  }
}
