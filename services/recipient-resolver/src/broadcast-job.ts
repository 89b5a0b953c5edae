import { UnrecoverableError } from 'bullmq';
import {
  LocalClock,
  eventDefinition,
  evaluatePreferences,
  parseJob,
  preferenceEventOf,
  type CompiledPreferences,
  type PreferenceEvent,
} from '@alarmcast/contracts';
import type {
  AudienceUpdate,
  BroadcastMarker,
  BroadcastPlan,
  BroadcastPlanLoader,
  RecordedDecision,
} from '@alarmcast/db';
import type { Logger } from '@alarmcast/observability';
import type { UserLogWriter } from '@alarmcast/redis';
import type { ResolverMetrics } from './metrics.js';
import type { PreferenceCache } from './preference-cache.js';

export interface BroadcastResult {
  recipients: number;
  delivered: number;
}

export interface BroadcastJobDeps {
  plans: BroadcastPlanLoader;
  marker: BroadcastMarker;
  writer: UserLogWriter;
  metrics: ResolverMetrics;
  preferences: PreferenceCache;
  /** the moment quiet hours are read at @defaultValue the current time */
  now?: () => Date;
  /** one `info` line per broadcast, under the `eventId` field every service uses (README "Logs") */
  log?: Logger;
}

/** The part of a BullMQ job the resolver reads. */
export interface BroadcastJobInput {
  name: string;
  data: unknown;
  /** when the job was added (ms), BullMQ's `job.timestamp` */
  timestamp?: number;
  /** when this attempt started (ms), BullMQ's `job.processedOn` */
  processedOn?: number;
  /** attempts made before this one */
  attemptsMade?: number;
}

/** What the preferences of an event's recipients decided, ready for the writer and the marker. */
export interface RecipientDecisions {
  /** delivered (with notify or silently), in the plan's order */
  reached: number[];
  /** the reached users who get `"notify":false` */
  silent: Set<number>;
  /** reached users who had not received this alarm before */
  newlyReceived: number[];
  /** every decision other than a plain delivery (rule `default`), for the audience */
  decisions: Record<string, RecordedDecision>;
  suppressed: number;
}

/**
 * Decides every recipient of one event (contracts' evaluatePreferences), at one moment: the per-recipient
 * work of a broadcast, with no I/O (the benchmark times it beside the plan query).
 */
export function decideRecipients(
  recipients: readonly number[],
  prefsOf: (userId: number) => CompiledPreferences,
  subject: PreferenceEvent,
  clock: LocalClock,
  received: ReadonlySet<number>,
): RecipientDecisions {
  const reached: number[] = [];
  const silent = new Set<number>();
  const newlyReceived: number[] = [];
  const decisions: Record<string, RecordedDecision> = {};
  let suppressed = 0;
  for (const user of recipients) {
    const before = received.has(user);
    const decision = evaluatePreferences(prefsOf(user), subject, clock, before);
    if (decision.rule !== 'default') decisions[user] = [decision.outcome, decision.rule, decision.source];
    if (decision.outcome === 'suppress') {
      suppressed++;
      continue;
    }
    reached.push(user);
    if (decision.outcome === 'deliver_silent') silent.add(user);
    if (!before) newlyReceived.push(user);
  }
  return { reached, silent, newlyReceived, decisions, suppressed };
}

/** One event of a plan: the plan's own, or one of its pending earlier ones. */
interface PlannedEvent {
  eventId: string;
  kind: string;
  payloadJson: string;
  alarmId: string | null;
}

/**
 * The resolver's job, `BroadcastAlarmToTenant {eventId}` (or `BroadcastEvents {eventIds}`, the same for up
 * to 100 events at once): load the outbox event with its recipients
 * (the audience rule of its catalogue entry), decide per recipient what their preferences say (deliver,
 * deliver silently, suppress), append it to the logs of those it reaches and publish it, then mark it
 * broadcast with who it reached. Everything here is idempotent per (event, user), so a retried, stalled or
 * re-enqueued job serves nobody twice. Errors that retrying cannot fix are UnrecoverableError (BullMQ fails
 * the job at once).
 */
export function broadcastJob(deps: BroadcastJobDeps) {
  const { plans, marker, writer, metrics, preferences, log } = deps;
  const now = deps.now ?? (() => new Date());

  /**
   * Decides, appends and publishes to everyone not served yet, then marks the event; returns how many it
   * served. `received` (the users who got an earlier event of this alarm) grows with whom this one reaches,
   * so the next event of the alarm in this job sees them.
   */
  async function broadcast(
    plan: BroadcastPlan,
    event: PlannedEvent,
    wireName: string,
    prefsOf: (userId: number) => CompiledPreferences,
    received: Set<number>,
  ): Promise<number> {
    const subject = preferenceEventOf(event.kind, JSON.parse(event.payloadJson));
    const { reached, silent, newlyReceived, decisions, suppressed } = decideRecipients(
      plan.recipients,
      prefsOf,
      subject,
      new LocalClock(now()),
      received,
    );
    const delivered = await writer.appendAndPublish(
      event.eventId,
      wireName,
      event.payloadJson,
      reached,
      silent,
    );
    for (const user of newlyReceived) received.add(user);
    const audience: AudienceUpdate | undefined =
      event.alarmId === null
        ? undefined
        : { alarmId: event.alarmId, tenantId: plan.tenantId, newlyReceived, decisions };
    await marker.mark(event.eventId, audience);
    metrics.deliveries.inc(delivered);
    metrics.outcomes.inc({ outcome: 'deliver' }, reached.length - silent.size);
    metrics.outcomes.inc({ outcome: 'deliver_silent' }, silent.size);
    metrics.outcomes.inc({ outcome: 'suppress' }, suppressed);
    return delivered;
  }

  return async function run(job: BroadcastJobInput): Promise<BroadcastResult> {
    const parsed = parseJob(job.name, job.data);
    if (!parsed.ok) throw new UnrecoverableError(parsed.reason);
    // Queue wait of the first attempt only: a retry's wait includes its backoff, which is not queueing.
    const queueWaitMs =
      job.timestamp !== undefined && job.processedOn !== undefined && !job.attemptsMade
        ? Math.max(0, job.processedOn - job.timestamp)
        : undefined;
    if (queueWaitMs !== undefined) metrics.queueWaitSeconds.observe(queueWaitMs / 1000);
    const end = metrics.jobSeconds.startTimer();
    try {
      if ('eventId' in parsed.data) return await runParsed(parsed.data.eventId, queueWaitMs);
      return await runMany(parsed.data.eventIds, queueWaitMs);
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
  async function runMany(eventIds: readonly string[], queueWaitMs?: number): Promise<BroadcastResult> {
    const outcomes = await Promise.allSettled(eventIds.map((id) => runParsed(id, queueWaitMs)));
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

  /** One event; `queueWaitMs` (its job's) goes on the event's log line. */
  async function runParsed(eventId: string, queueWaitMs?: number): Promise<BroadcastResult> {
    const started = performance.now();
    const plan = await plans.load(eventId);
    // Jobs are enqueued after the commit, so a missing event was pruned or never existed: retrying cannot help.
    if (!plan) throw new UnrecoverableError(`outbox event ${eventId} not found`);
    const definition = eventDefinition(plan.kind);
    if (!definition) throw new UnrecoverableError(`outbox event ${eventId} has unknown kind ${plan.kind}`);
    const prefsOf = await preferences.forPlan(plan);
    // Who received each alarm so far, carried from event to event within this job (lifecycle coherence).
    const received = new Map<string, Set<number>>();
    const receivedOf = (alarmId: string | null): Set<number> => {
      if (alarmId === null) return new Set();
      let set = received.get(alarmId);
      if (!set) received.set(alarmId, (set = new Set(plan.received.get(alarmId))));
      return set;
    };
    // Jobs run concurrently, so the job of a device's earlier event may still be running (or waiting) when
    // this one starts: delivering those first keeps each user's log in commit order per device, so a clear
    // never lands before the raise it clears. Each user gets an event once whoever delivers it, so the
    // earlier event's own job then finds nothing left to do.
    // They share this event's device, so its recipients.
    for (const earlier of plan.pendingBefore) {
      const earlierDefinition = eventDefinition(earlier.kind);
      // An event its own job cannot deliver either must not hold up the ones after it.
      if (
        earlierDefinition &&
        (await broadcast(plan, earlier, earlierDefinition.wireName, prefsOf, receivedOf(earlier.alarmId))) > 0
      ) {
        metrics.earlierDelivered.inc();
      }
    }
    const delivered = await broadcast(plan, plan, definition.wireName, prefsOf, receivedOf(plan.alarmId));
    metrics.recipients.observe(plan.recipients.length);
    log?.info(
      {
        eventId,
        recipients: plan.recipients.length,
        delivered,
        queueWaitMs,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      },
      'event broadcast',
    );
    return { recipients: plan.recipients.length, delivered };
  }
}
