-- Notification preferences (issue 14): each user's rules, each tenant's defaults and locks, and per alarm who
-- received it (lifecycle coherence) with the latest non-default decisions (GET /v1/alarms/{id}/audience).

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
