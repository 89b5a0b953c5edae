import type { PgPool } from './pool.js';

/** A collector token as stored: only its hash is kept; platform-wide when `tenantId` is null. */
export interface CollectorTokenRow {
  id: number;
  tenantId: number | null;
  revoked: boolean;
  /** what it may post (contracts COLLECTOR_SCOPES) */
  scopes: string[];
}

export async function findCollectorToken(pool: PgPool, tokenHash: string): Promise<CollectorTokenRow | null> {
  const { rows } = await pool.query<{
    id: number;
    tenant_id: number | null;
    revoked: boolean;
    scopes: string[];
  }>({
    name: 'find_collector_token',
    text: `SELECT id, tenant_id, revoked_at IS NOT NULL AS revoked, scopes
             FROM collector_tokens WHERE token_hash = $1`,
    values: [tokenHash],
  });
  const row = rows[0];
  return row ? { id: row.id, tenantId: row.tenant_id, revoked: row.revoked, scopes: row.scopes } : null;
}
