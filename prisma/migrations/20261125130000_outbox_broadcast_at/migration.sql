-- AlterTable
ALTER TABLE "outbox_events" ADD COLUMN "broadcast_at" TIMESTAMPTZ(3);

-- Events enqueued before this column existed are taken as broadcast.
UPDATE "outbox_events" SET "broadcast_at" = "enqueued_at" WHERE "enqueued_at" IS NOT NULL;

-- CreateIndex (partial: the events still to broadcast, which the relay scans; not expressible in schema.prisma)
CREATE INDEX "outbox_events_pending_broadcast_idx" ON "outbox_events"("id") WHERE "broadcast_at" IS NULL;
