import { z } from 'zod';
import { CollectorScopes } from './collector-scopes.js';

const ref = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'refs are 1-64 of [A-Za-z0-9_.-]');
const role = z.enum(['platform_admin', 'tenant_admin', 'operator', 'viewer']);

const user = z
  .object({
    ref,
    email: z.email(),
    name: z.string().min(1).max(200),
    role: role.default('operator'),
    active: z.boolean().default(true),
  })
  .strict();

const device = z
  .object({
    ref,
    /** IEEE OUI of the manufacturer, 6 hex digits (CWMP DeviceId.OUI) */
    oui: z.string().regex(/^[0-9A-F]{6}$/, 'OUI is 6 upper-case hex digits'),
    productClass: z.string().min(1).max(64),
    serialNumber: z.string().min(1).max(64),
    name: z.string().max(200).optional(),
  })
  .strict();

/** `scopes` defaults to DEFAULT_COLLECTOR_SCOPES (`["alarms"]`) */
const token = z
  .object({ ref, name: z.string().min(1).max(200), scopes: CollectorScopes.optional() })
  .strict();

/**
 * A whole graph of tenants, users, devices, shares and collector tokens, created in one transaction by
 * `cli provision --file graph.json`. Objects are named by `ref` so that shares can point at them; the
 * output maps every ref to its id (and tokens to their secret, printed once).
 */
export const ProvisionGraph = z
  .object({
    tenants: z
      .array(
        z
          .object({
            ref,
            name: z.string().min(1).max(200),
            slug: z.string().regex(/^[a-z0-9-]{1,64}$/),
            users: z.array(user).default([]),
            devices: z.array(device).default([]),
            collectorTokens: z.array(token).default([]),
          })
          .strict(),
      )
      .default([]),
    /** users that belong to no tenant (platform operators) */
    platformUsers: z.array(user).default([]),
    /** platform-wide collector tokens */
    collectorTokens: z.array(token).default([]),
    shares: z.array(z.object({ user: ref, device: ref }).strict()).default([]),
  })
  .strict();
export type ProvisionGraph = z.input<typeof ProvisionGraph>;
export type ParsedProvisionGraph = z.output<typeof ProvisionGraph>;

export interface ProvisionResult {
  tenants: Record<string, { id: number }>;
  users: Record<string, { id: number; tenantId: number | null; jwt?: string }>;
  devices: Record<string, { id: number; tenantId: number }>;
  collectorTokens: Record<string, { id: number; tenantId: number | null; token: string }>;
}
