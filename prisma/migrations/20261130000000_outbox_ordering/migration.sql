-- CreateIndex (partial, not expressible in schema.prisma): a broadcast job looks up the earlier events of
-- its device (or, for a device-less alarm, of its alarm) that are not broadcast yet, to deliver them first.
CREATE INDEX "outbox_events_pending_device_idx" ON "outbox_events"("device_id", "id") WHERE "broadcast_at" IS NULL;
CREATE INDEX "outbox_events_pending_alarm_idx" ON "outbox_events"("alarm_id", "id") WHERE "broadcast_at" IS NULL AND "device_id" IS NULL;
