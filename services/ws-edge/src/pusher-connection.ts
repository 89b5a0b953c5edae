import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import { RESUME_FAILED_EVENT, parseChannel, type ResumeFailedData } from '@alarmcast/contracts';
import {
  LOG_START,
  compareStreamIds,
  parseStreamId,
  type LogGap,
  type LoggedEvent,
  type StateSnapshot,
} from '@alarmcast/redis';
import { verifyChannelAuth } from '@alarmcast/auth';
import type { Logger } from '@alarmcast/observability';
import type { ChannelPublisher } from './channel-publisher.js';
import { CLOSE_REASONS, PUSHER_CODES, type PusherCode } from './close-codes.js';
import { closeCodeLabel, type EdgeMetrics } from './metrics.js';
import { ERROR_MESSAGES, decodeClientFrame, serverFrames } from './pusher-protocol.js';
import type { ChannelMember, ChannelSubscriptions } from './subscriptions.js';
import {
  REVOCATION_MESSAGES,
  SocketGrants,
  grantOf,
  type Grant,
  type GrantRefusal,
  type RevocableMember,
  type Revocation,
} from './revocation.js';

export interface ConnectionContext {
  app: { key: string; secret: string };
  activityTimeoutS: number;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  clientEventsPerSecond: number;
  subscriptions: ChannelSubscriptions;
  publisher: ChannelPublisher;
  /** a user's log after an event id, for resume (packages/redis readUserLogAfter) */
  readUserLog: (userId: number, afterId: string) => Promise<{ events: LoggedEvent[]; gap: LogGap | null }>;
  /** the id of a user's newest log entry, or LOG_START (packages/redis readUserLogTail) */
  readUserLogTail: (userId: number) => Promise<string>;
  /**
   * A state channel's current state (packages/redis readStateSnapshot: one Redis read, no Postgres), sent
   * first on every (re)subscribe of `private-device.{id}` and `private-tenant.{id}`
   */
  readSnapshot?: (channel: string) => Promise<StateSnapshot | null>;
  /**
   * What follows the state snapshot (packages/redis readTaskSnapshots): a device's open tasks, a campaign's
   * progress, each with `"snapshot": true`
   */
  readTaskSnapshots?: (channel: string) => Promise<{ event: string; data: string }[]>;
  metrics: EdgeMetrics;
  log: Logger;
  /** owners of subscriptions and live revocation (revocation.ts) */
  revocation: Revocation;
  /** a socket closed because its JWT expired */
  onExpired?: () => void;
  /** a resume that could not prove it has everything: the client was told to reload (operator view) */
  onResumeFailed?: (reason: string, userId: number) => void;
  onClosed: (connection: PusherConnection) => void;
  /**
   * Called when the socket subscribes to `private-user.{userId}` (signature checked): false refuses it, and
   * the socket is closed with 4004 (per-user connection cap).
   */
  claimUser?: (connection: PusherConnection, userId: number) => boolean;
}

type Refusal = 'presence' | 'public' | 'unknown_channel' | 'bad_signature' | GrantRefusal;

/**
 * The socket's PusherConnection, on the ws object itself, so that every socket shares one set of listener
 * functions (ws calls them with the socket as `this`) instead of five closures and their context each:
 * ~400 bytes of an idle connection's heap.
 */
const OWNER = Symbol('alarmcast.connection');
type OwnedSocket = WebSocket & { [OWNER]: PusherConnection };
const ownerOf = (ws: WebSocket): PusherConnection => (ws as OwnedSocket)[OWNER];
function onSocketMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  ownerOf(this).received(data, isBinary);
}
// ws answers control-frame pings itself; either kind of control frame still proves the client is there.
function onSocketControlFrame(this: WebSocket): void {
  ownerOf(this).touch();
}
function onSocketError(this: WebSocket, err: Error): void {
  ownerOf(this).socketError(err);
}
function onSocketClose(this: WebSocket, code: number): void {
  ownerOf(this).closed(code);
}

/**
 * Frames sent to one socket in one turn of the event loop leave in one write: ws writes each frame as soon
 * as it is sent, so a socket that gets ten events from Redis (a pipeline of publishes, a campaign's progress
 * and its device updates, a snapshot and its tasks) costs ten syscalls, and on a busy edge the writes were
 * most of its CPU. A socket is corked on its first frame and every corked socket is uncorked in the loop's
 * check phase (setImmediate), right after the poll phase that read the messages: everything read from Redis
 * in that phase shares the flush, so the busier the edge, the fewer writes per frame, at no added wait
 * when idle. Past CORK_FLUSH_BYTES a socket is flushed at once, so that a burst is not held in memory and
 * the slow-consumer check (bufferedAmount, which counts what is corked) stays about the client.
 */
const CORK_FLUSH_BYTES = 64 * 1024;
const corkedThisTurn: Duplex[] = [];
function uncorkAll(): void {
  // uncork is a no-op on a socket flushed (or ended) meanwhile
  for (const socket of corkedThisTurn) socket.uncork();
  corkedThisTurn.length = 0;
}

/**
 * One client socket speaking Pusher v7: decodes its frames, checks its subscriptions, and receives channel
 * events from the registry. Nothing a client sends can throw out of here.
 */
export class PusherConnection implements ChannelMember, RevocableMember {
  /** channels joined or being joined; a channel leaves this set on unsubscribe or close */
  private readonly channels = new Set<string>();
  /** when the socket connected, and whether it ever subscribed (for EDGE_SUBSCRIBE_TIMEOUT_S) */
  readonly connectedAt = Date.now();
  private subscribedOnce = false;
  private lastSeen = Date.now();
  private pingSentAt: number | null = null;
  /** start of the current one-second client-event window, and how many were sent in it */
  private clientEventWindowStart = 0;
  private clientEventsInWindow = 0;
  private childLog: Logger | undefined;
  /**
   * Channels being resumed: live events that arrive while the log is replayed wait here, and are sent after
   * it unless the replay already covered them. Made on first use, as sentUpTo: an empty Map is ~200 bytes,
   * and most sockets never resume.
   */
  private resuming: Map<string, { frame: string; eventId: string | undefined }[]> | undefined;
  /**
   * Channels whose subscriber connection was lost (again) while they were resuming: what was published
   * after that replay's read and before the new connection was live reached nobody, so they resume once
   * more, from where the running replay leaves them, once the new connection is live. Made on first use.
   */
  private resumeAgain: Map<string, Promise<void>> | undefined;
  /**
   * For resumed channels, the newest event id the replay sent. The replay reads the log on one Redis
   * connection while live messages come on another, so an event the replay already sent can still arrive
   * live afterwards; a user's events reach this node in log order, so until a live event newer than this
   * mark goes by, anything at or below it is a repeat. Only ids read from the log itself are ever put here,
   * never the position the client claims (a forged newer one would silence the socket), and the mark is
   * dropped once the overlap is over (a log recreated with lower ids, on a Redis whose clock went back,
   * would otherwise be dropped for good).
   */
  private sentUpTo: Map<string, string> | undefined;
  /**
   * For user channels, the event id of the last event sent (live or replayed): where this socket resumes
   * by itself when the node's subscriber connection was lost for a while (see resubscribed).
   */
  private readonly lastSent = new Map<string, string>();
  /** owner and expiry of each subscription, for live revocation */
  private readonly grants: SocketGrants;
  /**
   * For state channels, the sequence of the last snapshot sent: a live update at or below it is older than
   * what the socket has (it was in flight on the subscriber connection while the snapshot was read on
   * another). Dropped once a newer update goes by, so a state restarted from 1 (expired, Redis lost its
   * data) is not silenced. Made on first use, as sentUpTo.
   */
  private snapshotSeq: Map<string, number> | undefined;

  constructor(
    readonly socketId: string,
    private readonly ws: WebSocket,
    private readonly ctx: ConnectionContext,
    /** the upgraded TCP socket under ws, corked until the loop turn ends (see CORK_FLUSH_BYTES) */
    private readonly socket: Duplex,
  ) {
    (ws as OwnedSocket)[OWNER] = this;
    ws.on('message', onSocketMessage);
    ws.on('ping', onSocketControlFrame);
    ws.on('pong', onSocketControlFrame);
    ws.on('error', onSocketError);
    ws.on('close', onSocketClose);
    this.grants = new SocketGrants(this, ctx.revocation);
    this.send(serverFrames.connectionEstablished(socketId, ctx.activityTimeoutS));
  }

  /**
   * The logger bound to this socket, made on first use: a pino child costs ~250 bytes per connection, and
   * most connections never log anything.
   */
  private get log(): Logger {
    return (this.childLog ??= this.ctx.log.child({ socketId: this.socketId }));
  }

  get everSubscribed(): boolean {
    return this.subscribedOnce;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  deliver(frame: string, channel: string, eventId: string | undefined): void {
    const held = this.resuming?.get(channel);
    if (held) {
      held.push({ frame, eventId });
      return;
    }
    if (!this.isOpen) return;
    const snapshotSeq = this.snapshotSeq?.get(channel);
    if (snapshotSeq !== undefined && eventId !== undefined) {
      if (Number(eventId) <= snapshotSeq) return;
      this.snapshotSeq?.delete(channel);
    }
    const upTo = this.sentUpTo?.get(channel);
    if (upTo !== undefined && eventId !== undefined) {
      if (compareStreamIds(eventId, upTo) <= 0) return;
      // Past the replay: every repeat has gone by.
      this.sentUpTo?.delete(channel);
    }
    if (this.ws.bufferedAmount > this.ctx.maxBufferedBytes) {
      // A socket that cannot keep up would grow this process's memory without bound. 4100 makes pusher-js
      // back off and reconnect; what it missed meanwhile is for resume to recover, not for our heap to hold.
      this.ctx.metrics.framesDropped.inc({ reason: 'slow_consumer' });
      this.log.warn({ bufferedAmount: this.ws.bufferedAmount }, 'closing a socket that is not reading');
      this.close(PUSHER_CODES.overCapacity, CLOSE_REASONS.slowConsumer);
      return;
    }
    this.send(frame);
    this.ctx.metrics.messagesDelivered.inc();
    if (eventId !== undefined && this.lastSent.has(channel)) this.lastSent.set(channel, eventId);
  }

  /**
   * The node stopped listening to Redis for a while (a blip, a restart) and is back: events published
   * meanwhile reached no socket, and the client, whose socket stayed open, would never know. A user channel
   * on which an event was sent resumes from it, exactly as a reconnecting client would: what the log holds
   * after it, or `alarmcast:resume_failed` when the log cannot prove it (recreated empty by a restart,
   * expired). A channel that has had no event yet resumes from the position taken when it subscribed
   * (takePosition); one whose position could not be read is told at once that what it missed is unknown.
   */
  resubscribed(channel: string, settled: Promise<void>): void {
    const from = this.lastSent.get(channel);
    const parsed = parseChannel(channel);
    if (this.isStateChannel(channel) && this.channels.has(channel) && !this.resuming?.has(channel)) {
      // What changed meanwhile was published to nobody here: the current state again, then live.
      (this.resuming ??= new Map()).set(channel, []);
      settled.then(
        () => void this.sendSnapshot(channel),
        () => this.resuming?.delete(channel),
      );
      return;
    }
    if (from === undefined || parsed?.kind !== 'user') return;
    if (!this.channels.has(channel)) return;
    if (this.resuming?.has(channel)) {
      (this.resumeAgain ??= new Map()).set(channel, settled);
      return;
    }
    if (from === '') {
      const data: ResumeFailedData = { last_event_id: '', reason: 'unknown_position' };
      this.send(serverFrames.channelEvent(channel, RESUME_FAILED_EVENT, JSON.stringify(data)));
      this.ctx.metrics.resumes.inc({ outcome: 'unknown_position' });
      return;
    }
    (this.resuming ??= new Map()).set(channel, []);
    settled.then(
      () => void this.resume(channel, parsed.userId, from),
      (err: unknown) => {
        this.resuming?.delete(channel);
        this.log.error({ err, channel }, 'Redis did not answer after resubscribing');
        // As for a failed SUBSCRIBE: the client reconnects, resubscribes and resumes.
        this.close(PUSHER_CODES.overCapacity, CLOSE_REASONS.subscribeFailed);
      },
    );
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(code, reason);
    }
  }

  /** Ends the connection without a closing handshake, for sockets that ignore a close frame. */
  terminate(): void {
    this.ws.terminate();
  }

  /**
   * The server's half of Pusher's keep-alive. pusher-js pings after `activity_timeout` without traffic, so
   * a client silent for longer than `idleMs` gets a `pusher:ping`; one that does not answer within
   * `pongWaitMs` is gone (a dead TCP peer looks exactly like this) and is closed with 4201.
   */
  checkActivity(now: number, idleMs: number, pongWaitMs: number): void {
    if (!this.isOpen) return;
    if (this.pingSentAt !== null) {
      if (now - this.pingSentAt >= pongWaitMs)
        this.close(PUSHER_CODES.pongNotReceived, CLOSE_REASONS.pongNotReceived);
      return;
    }
    if (now - this.lastSeen >= idleMs) {
      this.pingSentAt = now;
      this.send(serverFrames.ping());
    }
  }

  /** (the shared ws listeners) a frame or a control frame came in */
  touch(): void {
    this.lastSeen = Date.now();
    this.pingSentAt = null;
  }

  private send(frame: string): void {
    if (!this.isOpen) return;
    this.write(frame);
    this.ctx.metrics.bytesSent.inc(Buffer.byteLength(frame));
  }

  /** ws.send, with the socket corked until the loop's check phase (see CORK_FLUSH_BYTES) */
  private write(frame: string): void {
    const socket = this.socket;
    if (socket.writableCorked === 0) {
      socket.cork();
      if (corkedThisTurn.push(socket) === 1) setImmediate(uncorkAll);
    }
    this.ws.send(frame);
    if (socket.writableLength >= CORK_FLUSH_BYTES) socket.uncork();
  }

  /** (the shared ws listeners) a client frame */
  received(data: RawData, isBinary: boolean): void {
    this.touch();
    const payload = Array.isArray(data)
      ? Buffer.concat(data)
      : Buffer.isBuffer(data)
        ? data
        : Buffer.from(data);
    this.ctx.metrics.messagesReceived.inc();
    this.ctx.metrics.bytesReceived.inc(payload.length);
    const frame = decodeClientFrame(payload, isBinary, this.ctx.maxMessageBytes);
    switch (frame.kind) {
      case 'ping':
        this.send(serverFrames.pong());
        return;
      case 'pong':
        return;
      case 'subscribe':
        this.subscribe(frame.channel, frame.auth, frame.lastEventId, frame.channelData);
        return;
      case 'unsubscribe':
        this.resuming?.delete(frame.channel);
        this.sentUpTo?.delete(frame.channel);
        this.snapshotSeq?.delete(frame.channel);
        this.lastSent.delete(frame.channel);
        this.grants.remove(frame.channel);
        if (this.channels.delete(frame.channel)) this.ctx.subscriptions.leave(frame.channel, this);
        return;
      case 'client-event':
        this.clientEvent(frame.event, frame.channel, frame.data);
        return;
      case 'ignored':
        return;
      case 'invalid':
        this.ctx.metrics.framesDropped.inc({ reason: frame.reason });
        this.log.debug({ reason: frame.reason }, 'invalid client frame');
        this.send(serverFrames.error(PUSHER_CODES.reconnect, frame.message));
        return;
    }
  }

  private subscribe(
    channel: string,
    auth: string | undefined,
    lastEventId: string | undefined,
    channelData: string | undefined,
  ): void {
    const grant = this.authorize(channel, auth, channelData);
    if (typeof grant === 'string') {
      const refusal = grant;
      // As Reverb does: a `pusher:error` 4009, the socket stays open for its other channels, and nothing of
      // this channel ever reaches it.
      this.ctx.metrics.subscriptionsRefused.inc({ reason: refusal });
      this.log.info({ channel, refusal }, 'subscription refused');
      const message = {
        presence: ERROR_MESSAGES.presenceUnsupported,
        public: ERROR_MESSAGES.publicUnsupported,
        unknown_channel: ERROR_MESSAGES.unknownChannel,
        bad_signature: ERROR_MESSAGES.unauthorized,
        owner_required: REVOCATION_MESSAGES.ownerRequired,
        bad_owner_data: REVOCATION_MESSAGES.badOwnerData,
        stale_auth: REVOCATION_MESSAGES.staleAuth,
        expired_auth: REVOCATION_MESSAGES.expiredAuth,
      }[refusal];
      this.send(serverFrames.error(PUSHER_CODES.unauthorized, message));
      return;
    }
    if (this.channels.has(channel)) {
      // pusher-js never resubscribes on the same socket, but answering twice is harmless and keeps others sane.
      this.send(serverFrames.subscriptionSucceeded(channel));
      return;
    }
    const parsed = parseChannel(channel);
    if (parsed?.kind === 'user' && this.ctx.claimUser && !this.ctx.claimUser(this, parsed.userId)) {
      this.close(PUSHER_CODES.overConnectionQuota, CLOSE_REASONS.tooManyConnectionsForUser);
      return;
    }
    this.subscribedOnce = true;
    this.channels.add(channel);
    this.grants.add(channel, grant);
    // '' until an event with an id is sent on it.
    if (parsed?.kind === 'user') this.lastSent.set(channel, '');
    const resumeFrom = lastEventId !== undefined && parsed?.kind === 'user' ? lastEventId : undefined;
    // Held from before SUBSCRIBE: once Redis acknowledges, every later event is either in the log read
    // below or among these, so nothing falls between replay and live. A state channel holds its live
    // updates the same way until its snapshot is sent.
    const snapshot = this.isStateChannel(channel);
    if (resumeFrom !== undefined || snapshot) (this.resuming ??= new Map()).set(channel, []);
    this.ctx.subscriptions.join(channel, this).then(
      () => {
        // Unsubscribed or closed while Redis was acknowledging: say nothing.
        if (!this.channels.has(channel)) return;
        this.send(serverFrames.subscriptionSucceeded(channel));
        if (snapshot) void this.sendSnapshot(channel);
        if (parsed?.kind !== 'user') return;
        if (resumeFrom !== undefined) void this.resume(channel, parsed.userId, resumeFrom);
        else void this.takePosition(channel, parsed.userId);
      },
      (err: unknown) => {
        this.resuming?.delete(channel);
        this.lastSent.delete(channel);
        this.grants.remove(channel);
        if (!this.channels.delete(channel)) return;
        this.log.error({ err, channel }, 'SUBSCRIBE failed');
        // Without the subscription this socket would silently miss events; make pusher-js back off and
        // reconnect, which subscribes everything again.
        this.close(PUSHER_CODES.overCapacity, CLOSE_REASONS.subscribeFailed);
      },
    );
  }

  /** A channel whose current state is sent at subscribe (state channels with a snapshot reader). */
  private isStateChannel(channel: string): boolean {
    const kind = parseChannel(channel)?.kind;
    return (
      this.ctx.readSnapshot !== undefined && (kind === 'device' || kind === 'tenant' || kind === 'campaign')
    );
  }

  /**
   * Sends the channel's current state, flagged `"snapshot": true`, then the live updates held meanwhile that
   * are newer than it. Without a stored state (never written, expired) only the held updates go out. A
   * failed read is logged and treated the same: live updates still flow, and the next subscribe tries again.
   */
  private async sendSnapshot(channel: string): Promise<void> {
    let snapshot: StateSnapshot | null = null;
    let tasks: { event: string; data: string }[] = [];
    try {
      [snapshot, tasks] = await Promise.all([
        this.ctx.readSnapshot!(channel),
        this.ctx.readTaskSnapshots?.(channel) ?? [],
      ]);
    } catch (err) {
      this.log.warn({ err, channel }, 'could not read the state snapshot');
    }
    const held = this.resuming?.get(channel) ?? [];
    this.resuming?.delete(channel);
    if (!this.channels.has(channel)) return; // unsubscribed meanwhile
    if (snapshot) {
      this.send(serverFrames.channelEvent(channel, snapshot.event, snapshot.data));
      (this.snapshotSeq ??= new Map()).set(channel, snapshot.seq);
    }
    for (const t of tasks) this.send(serverFrames.channelEvent(channel, t.event, t.data));
    for (const h of held) this.deliver(h.frame, channel, h.eventId);
  }

  /**
   * A user channel subscribed without a position gets one: the log's newest entry as SUBSCRIBE went live
   * (anything later is delivered live or, if this node's subscriber connection is lost meanwhile, replayed
   * by `resubscribed`). Without it, events published while the connection was away would be missed
   * silently by sockets that had not received one yet, as Redis does to a subscriber that overflows its
   * output buffer in a storm. A live event that arrived first already gave the channel its position.
   */
  private async takePosition(channel: string, userId: number): Promise<void> {
    try {
      const tail = await this.ctx.readUserLogTail(userId);
      if (this.lastSent.get(channel) === '') this.lastSent.set(channel, tail);
    } catch (err) {
      // Redis is away: the resubscription that follows will find no position and report the gap.
      this.log.debug({ err, channel }, 'could not read the log position');
    }
  }

  /**
   * Replays the user's log after `afterId`, then releases the live events held meanwhile, skipping those
   * the replay already sent: the client sees every event after its position once, in log order. When the
   * log cannot prove it has everything (the position's entry is not in it: trimmed, expired, recreated,
   * unknown; or too much to replay), the client is told first with RESUME_FAILED_EVENT and reloads through
   * the API; what the log still holds after the position follows, then live events, either way. Saying it
   * first means a client that resets its position on the failure takes up the ids of the log it is now on
   * from the replayed events, instead of judging them against a position from another log.
   */
  private async resume(channel: string, userId: number, afterId: string): Promise<void> {
    // LOG_START is the edge's own position (takePosition), never a client's: the lastSent map only ever
    // holds it from there.
    const own = afterId === LOG_START && this.lastSent.get(channel) === LOG_START;
    let gap: ResumeFailedData['reason'] | null =
      !own && parseStreamId(afterId).length === 0 ? 'invalid_event_id' : null;
    let events: LoggedEvent[] = [];
    if (!gap) {
      try {
        const replay = await this.ctx.readUserLog(userId, afterId);
        gap = replay.gap;
        events = replay.events;
        this.ctx.metrics.resumes.inc({ outcome: gap ?? 'complete' });
      } catch (err) {
        this.log.warn({ err, channel }, 'could not read the event log for resume');
        gap = 'log_expired';
        this.ctx.metrics.resumes.inc({ outcome: 'log_unavailable' });
      }
    }
    if (!this.channels.has(channel)) {
      this.resuming?.delete(channel); // unsubscribed meanwhile
      this.resumeAgain?.delete(channel);
      return;
    }
    if (gap) {
      this.ctx.onResumeFailed?.(gap, userId);
      const data: ResumeFailedData = { last_event_id: own ? '' : afterId, reason: gap };
      this.send(serverFrames.channelEvent(channel, RESUME_FAILED_EVENT, JSON.stringify(data)));
    }
    for (const e of events) this.send(serverFrames.channelEvent(channel, e.event, e.data));
    const held = this.resuming?.get(channel) ?? [];
    this.resuming?.delete(channel);
    // From here on, deliver() drops whatever the replay already sent, held or still in flight. The mark is
    // an id the log gave us, never afterId itself: see sentUpTo.
    const last = events.at(-1);
    if (last) {
      (this.sentUpTo ??= new Map()).set(channel, last.eventId);
      this.lastSent.set(channel, last.eventId);
    }
    for (const h of held) this.deliver(h.frame, channel, h.eventId);
    const again = this.resumeAgain?.get(channel);
    if (again) {
      this.resumeAgain?.delete(channel);
      this.resubscribed(channel, again);
    }
  }

  /**
   * A `client-*` event (Echo's `whisper`), relayed as Reverb relays it for `accept_client_events_from:
   * members`: only from a socket subscribed to the channel, to that channel's other sockets on every node, at
   * most `clientEventsPerSecond` per socket. Only on `private-user.{id}`, whose other members are the same
   * user's other tabs and devices. A tenant channel is refused: any member could put words in the server's
   * mouth to every colleague, and the channel's events are meant to come from alarmcast alone.
   */
  private clientEvent(event: string, channel: string | undefined, data: unknown): void {
    const refuse = (outcome: string, code: PusherCode, message: string): void => {
      this.ctx.metrics.clientEvents.inc({ outcome });
      this.send(serverFrames.error(code, message));
    };
    if (channel === undefined || !this.channels.has(channel)) {
      return refuse('not_member', PUSHER_CODES.unauthorized, ERROR_MESSAGES.clientEventNotMember);
    }
    if (parseChannel(channel)?.kind !== 'user') {
      return refuse('channel_refused', PUSHER_CODES.clientEventRejected, ERROR_MESSAGES.clientEventsRefused);
    }
    const now = Date.now();
    if (now - this.clientEventWindowStart >= 1000) {
      this.clientEventWindowStart = now;
      this.clientEventsInWindow = 0;
    }
    if (++this.clientEventsInWindow > this.ctx.clientEventsPerSecond) {
      return refuse(
        'rate_limited',
        PUSHER_CODES.clientEventRejected,
        ERROR_MESSAGES.clientEventRateLimited(this.ctx.clientEventsPerSecond),
      );
    }
    this.ctx.metrics.clientEvents.inc({ outcome: 'published' });
    // Client-to-server `data` is a JSON value; sockets get it as a JSON string like every other event.
    const encoded = JSON.stringify(data ?? null);
    this.ctx.publisher
      .publish([{ channel, event, data: encoded, excludeSocketId: this.socketId }])
      .catch((err: unknown) => this.log.warn({ err, channel }, 'could not publish a client event'));
  }

  /**
   * Who the subscription belongs to and until when, or why it is refused. Public channels are refused on
   * purpose: every alarmcast event is per user or per tenant, and a channel anyone can join would turn a
   * publisher's mistake into a leak.
   */
  private authorize(
    channel: string,
    auth: string | undefined,
    channelData: string | undefined,
  ): Grant | Refusal {
    if (channel.startsWith('presence-')) return 'presence';
    if (!channel.startsWith('private-')) return 'public';
    const parsed = parseChannel(channel);
    if (!parsed) return 'unknown_channel';
    // Timing-safe: the expected signature is compared in constant time.
    const { key, secret } = this.ctx.app;
    if (!verifyChannelAuth(key, secret, this.socketId, channel, auth, channelData)) return 'bad_signature';
    return grantOf(parsed, channelData, Date.now());
  }

  // ---- live revocation (revocation.ts decides; these only end what it says) ----

  channelsOf(userId: number): string[] {
    return this.grants.channelsOf(userId);
  }

  /**
   * Ends one subscription: out of the registry (no more live or HTTP API events), out of the resume
   * buffers, and client events on it are refused as from a non-member. pusher-js has no server-initiated
   * unsubscribe, so the client is told twice: `pusher:error` 4009 naming the channel (logged by pusher-js),
   * and `pusher:subscription_error` on the channel itself, shaped as pusher-js' own auth failure (Echo's
   * `.error()` callback receives it). pusher-js then authorizes the channel again only after a reconnect,
   * and /broadcasting/auth answers 403.
   */
  revokeChannel(channel: string): void {
    if (!this.channels.delete(channel)) return;
    this.resuming?.delete(channel);
    this.sentUpTo?.delete(channel);
    this.snapshotSeq?.delete(channel);
    this.grants.remove(channel);
    this.ctx.subscriptions.leave(channel, this);
    const message = REVOCATION_MESSAGES.channelRevoked(channel);
    this.log.info({ channel }, 'subscription revoked');
    this.send(serverFrames.error(PUSHER_CODES.unauthorized, message));
    this.send(
      serverFrames.channelEvent(
        channel,
        'pusher:subscription_error',
        JSON.stringify({ type: 'AuthError', error: message, status: 403 }),
      ),
    );
  }

  /** Nothing is left for this socket's user to read: 4009, which pusher-js does not reconnect after. */
  revokeAll(): void {
    this.stopDelivery();
    this.log.info('connection revoked');
    this.send(serverFrames.error(PUSHER_CODES.unauthorized, REVOCATION_MESSAGES.accessRevoked));
    this.close(PUSHER_CODES.unauthorized, REVOCATION_MESSAGES.accessRevoked);
  }

  /** A subscription's JWT expired: 4203, pusher-js reconnects at once and authorizes again. */
  expire(): void {
    this.stopDelivery();
    this.ctx.onExpired?.();
    this.send(serverFrames.error(PUSHER_CODES.tokenExpired, REVOCATION_MESSAGES.tokenExpired));
    this.close(PUSHER_CODES.tokenExpired, REVOCATION_MESSAGES.tokenExpired);
  }

  /** Leaves every channel now rather than when the close handshake completes, which a client can delay. */
  private stopDelivery(): void {
    for (const channel of this.channels) this.ctx.subscriptions.leave(channel, this);
    this.channels.clear();
    this.resuming = undefined;
    this.grants.clear();
  }

  /** (the shared ws listeners) */
  socketError(err: Error): void {
    this.log.debug({ err }, 'socket error');
  }

  /** (the shared ws listeners) the socket is closed */
  closed(code: number): void {
    this.ctx.metrics.closes.inc({ code: closeCodeLabel(code) });
    for (const channel of this.channels) this.ctx.subscriptions.leave(channel, this);
    this.channels.clear();
    this.grants.clear();
    this.ctx.onClosed(this);
  }
}
