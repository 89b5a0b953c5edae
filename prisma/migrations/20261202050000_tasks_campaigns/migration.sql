-- CreateTable
CREATE TABLE "firmware_campaigns" (
    "id" TEXT NOT NULL,
    "tenant_id" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "target_version" TEXT NOT NULL,
    "state" TEXT NOT NULL DEFAULT 'running',
    "failure_threshold_percent" DOUBLE PRECISION,
    "device_count" INTEGER NOT NULL,
    "failing" BOOLEAN NOT NULL DEFAULT false,
    "source_token_id" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "firmware_campaigns_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "campaign_count_shards" (
    "campaign_id" TEXT NOT NULL,
    "shard" SMALLINT NOT NULL,
    "pending" INTEGER NOT NULL,
    "queued" INTEGER NOT NULL DEFAULT 0,
    "dispatched" INTEGER NOT NULL DEFAULT 0,
    "running" INTEGER NOT NULL DEFAULT 0,
    "succeeded" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "cancelled" INTEGER NOT NULL DEFAULT 0,
    "expired" INTEGER NOT NULL DEFAULT 0,
    "version" BIGINT NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "campaign_count_shards_pkey" PRIMARY KEY ("campaign_id","shard")
);

-- CreateTable
CREATE TABLE "campaign_devices" (
    "campaign_id" TEXT NOT NULL,
    "device_id" INTEGER NOT NULL,
    "task_id" TEXT,
    "state" TEXT,

    CONSTRAINT "campaign_devices_pkey" PRIMARY KEY ("campaign_id","device_id")
);

-- CreateTable
CREATE TABLE "device_tasks" (
    "tenant_id" INTEGER NOT NULL,
    "id" TEXT NOT NULL,
    "device_id" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "progress" SMALLINT NOT NULL DEFAULT 0,
    "phase" TEXT,
    "requested_by" INTEGER,
    "campaign_id" TEXT,
    "fault_code" INTEGER,
    "fault_string" TEXT,
    "detail" TEXT,
    "target_software_version" TEXT,
    "confirmed_by_inform" BOOLEAN NOT NULL DEFAULT false,
    "source_token_id" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "device_tasks_pkey" PRIMARY KEY ("tenant_id","id")
);

-- AlterTable
ALTER TABLE "outbox_events" ADD COLUMN "recipient_user_id" INTEGER;

-- CreateIndex
CREATE INDEX "firmware_campaigns_tenant_id_idx" ON "firmware_campaigns"("tenant_id");

-- CreateIndex
CREATE INDEX "campaign_devices_device_id_idx" ON "campaign_devices"("device_id");

-- CreateIndex
CREATE INDEX "device_tasks_device_id_updated_at_idx" ON "device_tasks"("device_id", "updated_at");

-- CreateIndex
CREATE INDEX "device_tasks_campaign_id_idx" ON "device_tasks"("campaign_id");

-- AddForeignKey
ALTER TABLE "firmware_campaigns" ADD CONSTRAINT "firmware_campaigns_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "campaign_count_shards" ADD CONSTRAINT "campaign_count_shards_campaign_id_fkey" FOREIGN KEY ("campaign_id") REFERENCES "firmware_campaigns"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "campaign_devices" ADD CONSTRAINT "campaign_devices_campaign_id_fkey" FOREIGN KEY ("campaign_id") REFERENCES "firmware_campaigns"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "campaign_devices" ADD CONSTRAINT "campaign_devices_device_id_fkey" FOREIGN KEY ("device_id") REFERENCES "cpe_devices"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "device_tasks" ADD CONSTRAINT "device_tasks_device_id_fkey" FOREIGN KEY ("device_id") REFERENCES "cpe_devices"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Not expressible in schema.prisma: the states as CHECK constraints (contracts' TASK_STATES, CAMPAIGN_STATES),
-- and the open tasks of a device (what its snapshot and GET /v1/devices/{id}/tasks read) as a partial index.
ALTER TABLE "device_tasks" ADD CONSTRAINT "device_tasks_state_check" CHECK ("state" IN ('queued', 'dispatched', 'running', 'succeeded', 'failed', 'cancelled', 'expired'));
ALTER TABLE "device_tasks" ADD CONSTRAINT "device_tasks_progress_check" CHECK ("progress" BETWEEN 0 AND 100);
ALTER TABLE "firmware_campaigns" ADD CONSTRAINT "firmware_campaigns_state_check" CHECK ("state" IN ('running', 'paused', 'completed', 'aborted'));
CREATE INDEX "device_tasks_open_idx" ON "device_tasks"("device_id", "updated_at") WHERE "state" IN ('queued', 'dispatched', 'running');
