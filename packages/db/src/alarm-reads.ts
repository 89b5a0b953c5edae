import type { PerceivedSeverity } from '@alarmcast/contracts';
import { alarmWireSql } from './alarm-wire-sql.js';
import type { AlarmViewer } from './access.js';
import type { PgPool } from './pool.js';

/** The alarm API's reads: what a viewer may see (access.ts), a page at a time. */

/** Where a page ends: the state group (active before cleared) and the id of its last alarm. */
export interface AlarmListPosition {
  cleared: boolean;
  id: string;
}

export interface AlarmListFilter {
  state: 'active' | 'cleared' | 'all';
  severities?: readonly PerceivedSeverity[];
  deviceId?: number;
  limit: number;
  after?: AlarmListPosition;
}

/** One listed alarm: its wire form as JSON text (alarmWireSql) and its position, for the next cursor. */
export interface AlarmListRow {
  alarmJson: string;
  position: AlarmListPosition;
}

/**
 * One page of the alarms a viewer may see, active first, then newest (highest id) first; `limit + 1` rows are
 * read so the caller knows whether there is a next page.
 *
 * Keyset pagination: each state is read as its own id-descending range, from the tenant's alarms (index
 * alarms_tenant_{state}_id_idx) and from each shared device of another tenant (alarms_device_{state}_id_idx,
 * one LATERAL range per share), every range limited to the page size. So a page costs O(limit x (1 + shares))
 * index entries however deep it is. The statement text varies with the filters present (at most 16 variants),
 * each one a named prepared statement.
 */
export async function listVisibleAlarms(
  pool: PgPool,
  viewer: AlarmViewer,
  filter: AlarmListFilter,
): Promise<AlarmListRow[]> {
  const values: unknown[] = [viewer.userId, viewer.tenantId, filter.limit + 1];
  const param = (v: unknown): string => `$${values.push(v)}`;
  const extra: string[] = [];
  if (filter.severities)
    extra.push(`a.perceived_severity = ANY(${param(filter.severities)}::perceived_severity[])`);
  if (filter.deviceId !== undefined) extra.push(`a.device_id = ${param(filter.deviceId)}::int`);

  const groups = (
    [
      { cleared: false, predicate: 'a.cleared_at IS NULL' },
      { cleared: true, predicate: 'a.cleared_at IS NOT NULL' },
    ] as const
  ).filter(
    (g) =>
      (filter.state === 'all' || (filter.state === 'cleared') === g.cleared) &&
      // After a page that ended in the cleared group, the active group is done.
      !(filter.after?.cleared === true && !g.cleared),
  );
  const ranges: string[] = [];
  const variant: string[] = [];
  for (const g of groups) {
    const conditions = [g.predicate, ...extra];
    if (filter.after && filter.after.cleared === g.cleared) {
      conditions.push(`a.id < ${param(filter.after.id)}::bigint`);
      variant.push(`${g.cleared ? 'c' : 'a'}<`);
    } else variant.push(g.cleared ? 'c' : 'a');
    const where = conditions.join(' AND ');
    ranges.push(
      `(SELECT a.* FROM alarms a WHERE a.tenant_id = $2::int AND ${where} ORDER BY a.id DESC LIMIT $3)`,
      `(SELECT x.* FROM user_devices s CROSS JOIN LATERAL (
          SELECT a.* FROM alarms a
           WHERE a.device_id = s.device_id AND a.tenant_id IS DISTINCT FROM $2::int AND ${where}
           ORDER BY a.id DESC LIMIT $3) x
         WHERE s.user_id = $1::int)`,
    );
  }
  if (ranges.length === 0) return [];
  if (filter.severities) variant.push('s');
  if (filter.deviceId !== undefined) variant.push('d');
  const { rows } = await pool.query<{ id: string; cleared: boolean; alarm: string }>({
    name: `list_alarms_${variant.join('_')}`,
    text: `SELECT page.id::text AS id, page.cleared_at IS NOT NULL AS cleared, ${alarmWireSql('page')}::text AS alarm
             FROM (${ranges.join('\nUNION ALL\n')}) page
            ORDER BY (page.cleared_at IS NOT NULL), page.id DESC LIMIT $3`,
    values,
  });
  return rows.map((r) => ({ alarmJson: r.alarm, position: { cleared: r.cleared, id: r.id } }));
}
