import { z } from 'zod';

/**
 * What a collector token may post. A route needs one scope; a token without it gets 403
 * `insufficient_scope`. `alarms`: POST /v1/alarms and /v1/alarms/batch; `informs`: POST /v1/devices/informs;
 * `tasks` and `campaigns`: reserved for the task and firmware-campaign routes.
 */
export const COLLECTOR_SCOPES = ['alarms', 'informs', 'tasks', 'campaigns'] as const;
export type CollectorScope = (typeof COLLECTOR_SCOPES)[number];

/**
 * The scopes of a token created without any named, and of every token that existed before scopes did (the
 * migration's column default): exactly what such a token could do then.
 */
export const DEFAULT_COLLECTOR_SCOPES: readonly CollectorScope[] = ['alarms'];

/** A list of scopes as the CLI and provisioning take it: 1-4 distinct known scopes. */
export const CollectorScopes = z
  .array(z.enum(COLLECTOR_SCOPES))
  .min(1)
  .max(COLLECTOR_SCOPES.length)
  .refine((s) => new Set(s).size === s.length, 'scopes must not repeat');
