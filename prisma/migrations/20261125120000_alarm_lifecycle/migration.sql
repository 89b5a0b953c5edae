-- Alarm lifecycle (TR-181 FaultMgmt): one active alarm per identifier, idempotent collector requests, and the
-- indexes of the user-facing alarm list. Hand-written: Prisma cannot express partial or expression indexes,
-- so schema.prisma only mentions them in comments and `prisma migrate diff` will not try to drop them.

-- Before the unique index can exist, older duplicates of an active alarm (possible while every raise created a
-- new row) are closed: the newest row of each (tenant, device, identifier) stays active, the older ones get the
-- time of this migration as cleared_at. Their severity is kept, so history shows what they were.
UPDATE "alarms" a
   SET "cleared_at" = CURRENT_TIMESTAMP, "changed_at" = CURRENT_TIMESTAMP
 WHERE a."cleared_at" IS NULL
   AND EXISTS (
     SELECT 1 FROM "alarms" n
      WHERE n."cleared_at" IS NULL
        AND n."tenant_id" = a."tenant_id"
        AND COALESCE(n."device_id", 0) = COALESCE(a."device_id", 0)
        AND n."alarm_identifier" = a."alarm_identifier"
        AND n."id" > a."id");

-- At most one active (not cleared) alarm per identifier on a device, or per tenant for device-less alarms
-- (device ids start at 1, so 0 stands for "no device"). The raise statement's ON CONFLICT names exactly this
-- index expression and predicate: two concurrent raises of one identifier become one insert and one update.
CREATE UNIQUE INDEX "alarms_active_identifier_key"
    ON "alarms" ("tenant_id", (COALESCE("device_id", 0)), "alarm_identifier")
 WHERE "cleared_at" IS NULL;

-- GET /v1/alarms: active first, then newest (id descending), per tenant and per shared device. Partial indexes,
-- one per state, because the list reads each state as its own id-ordered range (keyset pagination); the
-- queries say "cleared_at IS NULL" / "cleared_at IS NOT NULL" literally so that the planner matches them.
CREATE INDEX "alarms_tenant_active_id_idx" ON "alarms" ("tenant_id", "id" DESC) WHERE "cleared_at" IS NULL;
CREATE INDEX "alarms_tenant_cleared_id_idx" ON "alarms" ("tenant_id", "id" DESC) WHERE "cleared_at" IS NOT NULL;
CREATE INDEX "alarms_device_active_id_idx" ON "alarms" ("device_id", "id" DESC) WHERE "cleared_at" IS NULL;
CREATE INDEX "alarms_device_cleared_id_idx" ON "alarms" ("device_id", "id" DESC) WHERE "cleared_at" IS NOT NULL;

-- Idempotency-Key of POST /v1/alarms: the first answer per (collector token, key), written in the same
-- statement as the alarm change it answers, so a retried request can never apply twice. Rows older than the
-- replay window (24 h) are ignored and pruned.
CREATE TABLE "idempotency_keys" (
    "token_id" INTEGER NOT NULL,
    "key" TEXT NOT NULL,
    "request_hash" TEXT NOT NULL,
    "response_status" INTEGER NOT NULL,
    "response_body" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "idempotency_keys_pkey" PRIMARY KEY ("token_id","key")
);

CREATE INDEX "idempotency_keys_created_at_idx" ON "idempotency_keys"("created_at");

ALTER TABLE "idempotency_keys" ADD CONSTRAINT "idempotency_keys_token_id_fkey" FOREIGN KEY ("token_id") REFERENCES "collector_tokens"("id") ON DELETE CASCADE ON UPDATE CASCADE;
