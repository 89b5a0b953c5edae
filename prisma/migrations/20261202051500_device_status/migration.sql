-- Phase 3: collector token scopes, device status and presence.

-- What a collector token may post (contracts COLLECTOR_SCOPES). Every existing token keeps exactly what it
-- could do before: alarms.
ALTER TABLE "collector_tokens" ADD COLUMN "scopes" TEXT[] NOT NULL DEFAULT ARRAY['alarms']::TEXT[];
ALTER TABLE "collector_tokens" ADD CONSTRAINT "collector_tokens_scopes_check"
  CHECK (cardinality("scopes") >= 1 AND "scopes" <@ ARRAY['alarms', 'informs', 'tasks', 'campaigns']::TEXT[]);

-- Per-tenant presence overrides; null takes the ingest's defaults (DEVICE_OFFLINE_INTERVALS,
-- DEVICE_OFFLINE_GRACE_S, DEVICE_OFFLINE_ALARM).
ALTER TABLE "tenants"
  ADD COLUMN "device_offline_intervals" INTEGER CHECK ("device_offline_intervals" BETWEEN 1 AND 100),
  ADD COLUMN "device_offline_grace_s" INTEGER CHECK ("device_offline_grace_s" BETWEEN 0 AND 86400),
  ADD COLUMN "device_offline_alarm" BOOLEAN;

-- One row per device. Kept apart from cpe_devices (the platform's own table) so that the inform path's
-- frequent writes touch a narrow row of alarmcast's; fillfactor leaves room for HOT updates of the columns no
-- index covers.
CREATE TABLE "device_status" (
  "device_id" INTEGER NOT NULL PRIMARY KEY REFERENCES "cpe_devices"("id") ON DELETE CASCADE ON UPDATE CASCADE,
  "tenant_id" INTEGER NOT NULL,
  "online" BOOLEAN NOT NULL DEFAULT false,
  "last_inform_at" TIMESTAMPTZ(3),
  "last_boot_at" TIMESTAMPTZ(3),
  "software_version" TEXT,
  "hardware_version" TEXT,
  "uptime_s" BIGINT,
  "periodic_inform_interval_s" INTEGER,
  "last_event_codes" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[],
  "parameters" JSONB NOT NULL DEFAULT '{}',
  "offline_at" TIMESTAMPTZ(3),
  "offline_alarm_id" BIGINT,
  "status_changed_at" TIMESTAMPTZ(3),
  "version" BIGINT NOT NULL DEFAULT 0
) WITH (fillfactor = 80);

-- The presence detector's work list: only online devices, by deadline; its cost is the devices that are due.
CREATE INDEX "device_status_offline_due_idx" ON "device_status" ("offline_at") WHERE "online";
-- Online devices whose offline alarm an inform could not clear (it committed after the inform's snapshot):
-- normally empty, the detector clears them.
CREATE INDEX "device_status_offline_alarm_idx" ON "device_status" ("device_id")
  WHERE "online" AND "offline_alarm_id" IS NOT NULL;
-- The tenant summary's counts.
CREATE INDEX "device_status_tenant_id_online_idx" ON "device_status" ("tenant_id", "online");

INSERT INTO "device_status" ("device_id", "tenant_id") SELECT "id", "tenant_id" FROM "cpe_devices";

-- Every device has its status row from its creation on, whoever creates it (alarmcast or the platform's own
-- application), so informs only ever UPDATE; a device moved to another tenant takes its status along and
-- is announced on alarmcast_access, so edges end its channel's subscriptions that are no longer allowed.
CREATE OR REPLACE FUNCTION alarmcast_device_status_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO device_status (device_id, tenant_id) VALUES (NEW.id, NEW.tenant_id)
      ON CONFLICT (device_id) DO NOTHING;
  ELSIF OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
    UPDATE device_status SET tenant_id = NEW.tenant_id WHERE device_id = NEW.id;
    PERFORM pg_notify('alarmcast_access', json_build_object('change', 'device', 'device_id', NEW.id)::text);
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER cpe_devices_status_row
  AFTER INSERT OR UPDATE OF tenant_id ON cpe_devices
  FOR EACH ROW EXECUTE FUNCTION alarmcast_device_status_row();
