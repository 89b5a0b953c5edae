-- Live revocation: every change that can take away what a user may read is announced on the
-- `alarmcast_access` channel, whoever makes it (alarmcast's CLI and API, or the platform's own application
-- writing these tables directly). Each ws-edge LISTENs and re-checks that user's subscriptions.
-- NOTIFY is sent at commit (never for a rolled-back change), so the edge re-reads the committed state.
-- Payload: {"user_id": <int>, "change": "active" | "tenant" | "deleted" | "share", "device_id"?: <int>}.

CREATE OR REPLACE FUNCTION alarmcast_notify_user_access() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('alarmcast_access', json_build_object('user_id', OLD.id, 'change', 'deleted')::text);
  ELSE
    -- One notification per row and change; a reactivation is announced too, the re-check then ends nothing.
    IF OLD.active IS DISTINCT FROM NEW.active THEN
      PERFORM pg_notify('alarmcast_access', json_build_object('user_id', NEW.id, 'change', 'active')::text);
    END IF;
    IF OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
      PERFORM pg_notify('alarmcast_access', json_build_object('user_id', NEW.id, 'change', 'tenant')::text);
    END IF;
    IF OLD.id IS DISTINCT FROM NEW.id THEN
      PERFORM pg_notify('alarmcast_access', json_build_object('user_id', OLD.id, 'change', 'deleted')::text);
    END IF;
  END IF;
  RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION alarmcast_notify_share_access() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- A share that is removed or moved to another user or device is lost by its old user.
  IF TG_OP = 'DELETE' OR OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.device_id IS DISTINCT FROM NEW.device_id THEN
    PERFORM pg_notify(
      'alarmcast_access',
      json_build_object('user_id', OLD.user_id, 'change', 'share', 'device_id', OLD.device_id)::text
    );
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER users_access_notify
  AFTER UPDATE OF active, tenant_id, id OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION alarmcast_notify_user_access();

CREATE TRIGGER user_devices_access_notify
  AFTER UPDATE OR DELETE ON user_devices
  FOR EACH ROW EXECUTE FUNCTION alarmcast_notify_share_access();
