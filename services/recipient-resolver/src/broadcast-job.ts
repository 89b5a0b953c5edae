import { UnrecoverableError } from 'bullmq';
import { eventDefinition, parseJob } from '@alarmcast/contracts';
import type { BroadcastMarker, BroadcastPlan, BroadcastPlanLoader } from '@alarmcast/db';
import type { UserLogWriter } from '@alarmcast/redis';
import type { ResolverMetrics } from './metrics.js';

export interface BroadcastResult {
  recipients: number;
  delivered: number;
}

export interface BroadcastJobDeps {
  plans: BroadcastPlanLoader;
  marker: BroadcastMarker;
  writer: UserLogWriter;
  metrics: ResolverMetrics;
}

/**
 * The resolver's job, `BroadcastAlarmToTenant {eventId}` (or `BroadcastEvents {eventIds}`, the same for up
 * to 100 events at once): load the outbox event with its recipients
 * (the audience rule of its catalogue entry), append it to each recipient's log and publish it, then mark
 * it broadcast. Everything here is idempotent per (event, user), so a retried, stalled or re-enqueued job
 * serves nobody twice. Errors that retrying cannot fix are UnrecoverableError (BullMQ fails the job at once).
 */
export function broadcastJob(deps: BroadcastJobDeps) {
  const { plans, marker, writer, metrics } = deps;

  /** Appends and publishes to everyone not served yet, then marks the event; returns how many it served. */
  async function broadcast(plan: BroadcastPlan, wireName: string): Promise<number> {
    const delivered = await writer.appendAndPublish(
      plan.eventId,
      wireName,
      plan.payloadJson,
      plan.recipients,
    );
    await marker.mark(plan.eventId);
    metrics.deliveries.inc(delivered);
    return delivered;
  }

  return async function run(job: { name: string; data: unknown }): Promise<BroadcastResult> {
    const parsed = parseJob(job.name, job.data);
    if (!parsed.ok) throw new UnrecoverableError(parsed.reason);
    const end = metrics.jobSeconds.startTimer();
    try {
      if ('eventId' in parsed.data) return await runParsed(parsed.data.eventId);
      return await runMany(parsed.data.eventIds);
    } finally {
      end();
    }
  };

  /**
   * A BroadcastEvents job: each event as by its own job, all at once (their plan queries and marks share
   * round trips through the loader and the marker). An event that cannot be broadcast (gone, unknown kind)
   * is skipped and counted, not allowed to fail the others; any other failure fails the job after every
   * event has had its go, and the retry finds the delivered ones done.
   */
  async function runMany(eventIds: readonly string[]): Promise<BroadcastResult> {
    const outcomes = await Promise.allSettled(eventIds.map(runParsed));
    let recipients = 0;
    let delivered = 0;
    let retryable: unknown;
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') {
        recipients += outcome.value.recipients;
        delivered += outcome.value.delivered;
      } else if (outcome.reason instanceof UnrecoverableError) {
        metrics.eventsSkipped.inc();
      } else {
        retryable ??= outcome.reason;
      }
    }
    if (retryable !== undefined) throw retryable;
    return { recipients, delivered };
  }

  async function runParsed(eventId: string): Promise<BroadcastResult> {
    const plan = await plans.load(eventId);
    // Jobs are enqueued after the commit, so a missing event was pruned or never existed: retrying cannot help.
    if (!plan) throw new UnrecoverableError(`outbox event ${eventId} not found`);
    const definition = eventDefinition(plan.kind);
    if (!definition) throw new UnrecoverableError(`outbox event ${eventId} has unknown kind ${plan.kind}`);
    // Jobs run concurrently, so the job of a device's earlier event may still be running (or waiting) when
    // this one starts: delivering those first keeps each user's log in commit order per device, so a clear
    // never lands before the raise it clears. Each user gets an event once whoever delivers it, so the
    // earlier event's own job then finds nothing left to do.
    // They share this event's device, so its recipients.
    for (const earlier of plan.pendingBefore) {
      const earlierDefinition = eventDefinition(earlier.kind);
      // An event its own job cannot deliver either must not hold up the ones after it.
      if (earlierDefinition && (await broadcast({ ...plan, ...earlier }, earlierDefinition.wireName)) > 0) {
        metrics.earlierDelivered.inc();
      }
    }
    const delivered = await broadcast(plan, definition.wireName);
    metrics.recipients.observe(plan.recipients.length);
    return { recipients: plan.recipients.length, delivered };
  }
}
