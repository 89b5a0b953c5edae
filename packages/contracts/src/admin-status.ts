import { z } from 'zod';

/**
 * The operator view's wire shapes: what each edge reports of itself into Redis, the recent events they
 * record, and `GET /v1/admin/status` (platform admins only) that the console's cluster page polls.
 */

/** One edge's own state, written by that edge every `EDGE_STATUS_INTERVAL_MS`. */
export const EdgeStatus = z.object({
  node: z.string().min(1).max(200),
  connections: z.number().int().min(0),
  /** socket × channel pairs by channel kind */
  subscriptions: z.record(z.string(), z.number().int().min(0)),
  redisChannels: z.number().int().min(0),
  draining: z.boolean(),
  /** when the edge wrote this (ms since the epoch) */
  at: z.number().int(),
});
export type EdgeStatus = z.infer<typeof EdgeStatus>;

/** Edges write their status this often; an entry older than three intervals is gone (the edge stopped). */
export const EDGE_STATUS_INTERVAL_MS = 2000;
/** Recent operator events kept (the newest; every writer trims the list to this length). */
export const OPS_EVENTS_KEPT = 100;

/** A resume that failed (the client must reload) or a subscription ended by revocation, on some edge. */
export const OpsEvent = z.object({
  at: z.number().int(),
  node: z.string().min(1).max(200),
  kind: z.enum(['resume_failed', 'revocation']),
  /** the resume failure's reason, or the revocation's kind (`connection`, `channel`, `expired`) */
  reason: z.string().min(1).max(64),
  userId: z.number().int().positive(),
});
export type OpsEvent = z.infer<typeof OpsEvent>;

/** `GET /v1/admin/status` → 200. */
export const AdminStatusResponse = z.object({
  /** when the ingest assembled this answer (ms since the epoch) */
  at: z.number().int(),
  edges: z.array(EdgeStatus),
  queue: z.object({
    waiting: z.number().int().min(0),
    active: z.number().int().min(0),
    delayed: z.number().int().min(0),
    failed: z.number().int().min(0),
    /** how long the oldest waiting job has waited: the resolvers' lag */
    oldestWaitingAgeS: z.number().min(0),
  }),
  outbox: z.object({
    /** events not broadcast yet, counted up to 100,000 */
    pending: z.number().int().min(0),
    oldestPendingAgeS: z.number().min(0),
  }),
  /** newest first, at most 50 */
  recent: z.array(OpsEvent),
});
export type AdminStatusResponse = z.infer<typeof AdminStatusResponse>;
