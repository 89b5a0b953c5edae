import { Router, type RequestHandler } from 'express';
import {
  ROUTES,
  expressPath,
  reportedTaskState,
  type TaskListResponse,
  type TaskWriteResponse,
} from '@alarmcast/contracts';
import {
  confirmDownloadsByInform,
  listDeviceTasks,
  findVisibleDevices,
  writeTaskReport,
  type FailurePolicy,
  type PgPool,
  type TaskWriteResult,
} from '@alarmcast/db';
import { ApiError } from '@alarmcast/http';
import { requireJson, validationFailed } from './alarms-route.js';
import { collectorOf, requireScope } from './collector-auth.js';
import type { DbCall } from './db-breaker.js';
import type { OutboxDispatcher } from './outbox.js';
import type { TaskLivePublisher } from './task-live.js';
import { viewerOf } from './user-auth.js';

export interface TasksRouterOptions {
  pool: PgPool;
  db: DbCall;
  outbox: OutboxDispatcher;
  live: TaskLivePublisher;
  policy: FailurePolicy;
  /** collector authentication (the one of every collector route) */
  asCollector: RequestHandler;
  /** user authentication (the one of every user route) */
  asUser: RequestHandler;
  admission: RequestHandler;
}

const DEVICE_ID = /^[1-9]\d{0,9}$/;

/** The error of a refused report (nothing was changed). */
function refusal(taskId: string, r: Exclude<TaskWriteResult, { kind: 'applied' | 'replay' }>): ApiError {
  switch (r.kind) {
    case 'unknown_device':
      return new ApiError('unknown_device', 'no such device', [
        { field: 'deviceId', message: 'no such device' },
      ]);
    case 'unknown_campaign':
      return new ApiError('unknown_campaign', 'no such campaign in the device’s tenant', [
        { field: 'campaignId', message: 'no such campaign' },
      ]);
    case 'device_not_in_campaign':
      return new ApiError('device_not_in_campaign', 'the device is not one of the campaign’s devices', [
        { field: 'campaignId', message: 'the device is not in this campaign' },
      ]);
    case 'conflict':
      return new ApiError(
        'task_conflict',
        `task ${taskId} was first reported with another ${r.field} (${JSON.stringify(r.stored)})`,
        [{ field: r.field, message: `must be ${JSON.stringify(r.stored)} for this task` }],
      );
    case 'illegal_transition':
      return new ApiError(
        'illegal_task_transition',
        `task ${taskId} is ${r.from}: ${r.from} → ${r.to} is not a legal transition`,
        { from: r.from, to: r.to, task: r.task },
      );
    case 'progress_regressed':
      return new ApiError(
        'task_progress_regressed',
        `task ${taskId} is at progress ${r.from}: progress never goes down (reported ${r.to})`,
        { from: r.from, to: r.to, task: r.task },
      );
  }
}

/**
 * The device's inform reported a new softwareVersion: its open downloads targeting that version succeed
 * (`confirmed_by_inform`), with their events, campaign counts and live updates as for a report. Runs after
 * the inform's commit, one transaction per device; a failure is logged and the platform's own `succeeded`
 * report still ends the task.
 */
export function confirmDownloads(
  options: Pick<TasksRouterOptions, 'pool' | 'outbox' | 'live' | 'policy'> & {
    log: { warn: (obj: object, msg: string) => void };
  },
  changes: readonly { deviceId: number; softwareVersion: string }[],
): Promise<void> {
  return Promise.all(
    changes.map(async ({ deviceId, softwareVersion }) => {
      try {
        for (const r of await confirmDownloadsByInform(
          options.pool,
          deviceId,
          softwareVersion,
          options.policy,
        )) {
          for (const id of r.eventIds) options.outbox.dispatch(id);
          options.live.taskChanged(r.task);
          if (r.campaign) options.live.campaignChanged(r.campaign.campaign.id);
        }
      } catch (err) {
        options.log.warn({ err, deviceId }, 'could not confirm downloads by inform');
      }
    }),
  ).then(() => undefined);
}

/**
 * `PUT /v1/tasks/{taskId}` for collectors (the platform's ACS reports its tasks) and
 * `GET /v1/devices/{id}/tasks` for users who may see the device.
 */
export function tasksRouter(options: TasksRouterOptions): Router {
  const { pool, db, outbox, live, policy } = options;
  const router = Router();

  router.put(
    expressPath(ROUTES.putTask),
    requireJson,
    options.asCollector,
    requireScope('tasks'),
    options.admission,
    async (req, res) => {
      const collector = collectorOf(res);
      const taskId = ROUTES.putTask.pathParams.shape.taskId.safeParse(String(req.params.taskId));
      if (!taskId.success)
        throw validationFailed('path', [{ path: ['taskId'], message: taskId.error.issues[0]!.message }]);
      const parsed = ROUTES.putTask.body.schema.safeParse(req.body);
      if (!parsed.success) throw validationFailed('request body', parsed.error.issues);
      const body = { ...parsed.data, state: reportedTaskState(parsed.data) };
      const result = await db(() =>
        writeTaskReport(pool, {
          taskId: taskId.data,
          body,
          tokenTenantId: collector.tenantId,
          sourceTokenId: collector.tokenId,
          policy,
        }),
      );
      if (result.kind === 'replay') {
        res.status(200).json({ task: result.task, outcome: 'replay' } satisfies TaskWriteResponse);
        return;
      }
      if (result.kind !== 'applied') throw refusal(taskId.data, result);
      // Committed: the requester's copy and any threshold alarm go through the outbox; the live state after.
      for (const id of result.eventIds) outbox.dispatch(id);
      live.taskChanged(result.task);
      if (result.campaign) live.campaignChanged(result.campaign.campaign.id);
      res
        .status(result.outcome === 'created' ? 201 : 200)
        .json({ task: result.task, outcome: result.outcome } satisfies TaskWriteResponse);
    },
  );

  router.get(expressPath(ROUTES.listDeviceTasks), options.asUser, async (req, res) => {
    const viewer = viewerOf(res);
    const id = String(req.params.id);
    const query = ROUTES.listDeviceTasks.query.safeParse(req.query);
    if (!query.success) throw validationFailed('query string', query.error.issues);
    // A device the user may not see answers as one that does not exist.
    if (!DEVICE_ID.test(id) || Number(id) > 2_147_483_647) throw new ApiError('not_found', 'no such device');
    const deviceId = Number(id);
    const visible = await db(() => findVisibleDevices(pool, [{ userId: viewer.userId, deviceId }]));
    if (visible.size === 0) throw new ApiError('not_found', 'no such device');
    const tasks = await db(() =>
      listDeviceTasks(pool, deviceId, { openOnly: query.data.state === 'open', limit: query.data.limit }),
    );
    res.json({ tasks } satisfies TaskListResponse);
  });

  return router;
}
