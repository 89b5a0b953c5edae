import type { ProvisionGraph } from '@alarmcast/contracts';

type TenantInput = NonNullable<ProvisionGraph['tenants']>[number];

/** Its existence marks the demo world as created. */
export const DEMO_SLUG = 'demo';

export const DEMO_TENANT = {
  ref: 'demo',
  name: 'Demo ISP',
  slug: DEMO_SLUG,
  users: [
    { ref: 'demo-admin', email: 'admin@demo-isp.example', name: 'Ada Admin', role: 'tenant_admin' },
    { ref: 'demo-operator', email: 'operator@demo-isp.example', name: 'Otto Operator', role: 'operator' },
    { ref: 'demo-viewer', email: 'viewer@demo-isp.example', name: 'Vera Viewer', role: 'viewer' },
  ],
  devices: [
    {
      ref: 'demo-cpe-1',
      oui: '00D09E',
      productClass: 'IGD',
      serialNumber: 'DEMO00000001',
      name: 'Demo CPE 1',
    },
    {
      ref: 'demo-cpe-2',
      oui: '00D09E',
      productClass: 'IGD',
      serialNumber: 'DEMO00000002',
      name: 'Demo CPE 2',
    },
    {
      ref: 'demo-cpe-3',
      oui: '00D09E',
      productClass: 'IGD',
      serialNumber: 'DEMO00000003',
      name: 'Demo CPE 3',
    },
  ],
  /** re-issued (as a new token) by every later `demo` run, since a stored token cannot be shown again */
  collectorTokens: [{ ref: 'demo-collector', name: 'Demo ISP collector', scopes: ['alarms', 'informs'] }],
} satisfies TenantInput;

const OTHER_TENANT = {
  ref: 'other',
  name: 'Other ISP',
  slug: 'other-isp',
  users: [
    { ref: 'other-operator', email: 'operator@other-isp.example', name: 'Olga Other', role: 'operator' },
  ],
  devices: [
    {
      ref: 'other-cpe-1',
      oui: '001A2B',
      productClass: 'ONT',
      serialNumber: 'OTHER0000001',
      name: 'Other CPE 1',
    },
  ],
  collectorTokens: [],
} satisfies TenantInput;

/**
 * A small world that shows every delivery rule: tenant members of different roles, a device shared across
 * tenants, and collector tokens of both scopes. Emails use the reserved `.example` TLD (RFC 2606).
 */
export const DEMO_WORLD = {
  tenants: [DEMO_TENANT, OTHER_TENANT],
  collectorTokens: [
    { ref: 'platform-collector', name: 'Platform-wide collector', scopes: ['alarms', 'informs'] },
  ],
  // Someone of another tenant who must get demo-cpe-1's alarms only through this share.
  shares: [{ user: 'other-operator', device: 'demo-cpe-1' }],
} satisfies ProvisionGraph;
