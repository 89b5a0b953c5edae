-- Notification preferences (issue 14): each user's rules, each tenant's defaults and locks, and per alarm who
-- received it (lifecycle coherence) with the latest non-default decisions (GET /v1/alarms/{id}/audience).

-- AlterTable: the version of the user's preferences (0: none), mirrored by every write of user_preferences so
-- that the recipient lookup reads it from the users rows it visits anyway.
ALTER TABLE "users" ADD COLUMN "preferences_version" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "user_preferences" (
    "user_id" INTEGER NOT NULL,
    "rules" JSONB NOT NULL,
    "version" INTEGER NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "user_preferences_pkey" PRIMARY KEY ("user_id")
);

-- CreateTable
CREATE TABLE "tenant_preferences" (
    "tenant_id" INTEGER NOT NULL,
    "rules" JSONB NOT NULL,
    "version" INTEGER NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "tenant_preferences_pkey" PRIMARY KEY ("tenant_id")
);

-- CreateTable
CREATE TABLE "alarm_audiences" (
    "alarm_id" BIGINT NOT NULL,
    "tenant_id" INTEGER NOT NULL,
    "received" INTEGER[] NOT NULL DEFAULT ARRAY[]::INTEGER[],
    "last_event_id" BIGINT NOT NULL,
    "decisions" JSONB NOT NULL DEFAULT '{}',
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "alarm_audiences_pkey" PRIMARY KEY ("alarm_id")
);

-- AddForeignKey
ALTER TABLE "user_preferences" ADD CONSTRAINT "user_preferences_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "tenant_preferences" ADD CONSTRAINT "tenant_preferences_tenant_id_fkey" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "alarm_audiences" ADD CONSTRAINT "alarm_audiences_alarm_id_fkey" FOREIGN KEY ("alarm_id") REFERENCES "alarms"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- users.preferences_version follows user_preferences.version whoever writes the table (the API, the CLI, or
-- the platform's own application), so the resolver's recipient lookup can tell stale compiled rules apart.
CREATE OR REPLACE FUNCTION alarmcast_mirror_preferences_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    UPDATE users SET preferences_version = 0 WHERE id = OLD.user_id;
  ELSE
    IF TG_OP = 'UPDATE' AND OLD.user_id IS DISTINCT FROM NEW.user_id THEN
      UPDATE users SET preferences_version = 0 WHERE id = OLD.user_id;
    END IF;
    UPDATE users SET preferences_version = NEW.version WHERE id = NEW.user_id;
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER user_preferences_mirror_version
AFTER INSERT OR UPDATE OF version, user_id OR DELETE ON user_preferences
FOR EACH ROW EXECUTE FUNCTION alarmcast_mirror_preferences_version();
