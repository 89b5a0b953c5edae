#!/usr/bin/env bash
# Starts the whole system on local defaults: Postgres and Redis (if not running), dependencies, migrations,
# a demo tenant, then alarm-ingest, recipient-resolver and ws-edge in the foreground. Ctrl-C stops them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_services
ensure_install

export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/alarmcast}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export INGEST_PORT="${INGEST_PORT:-3000}" EDGE_PORT="${EDGE_PORT:-6001}" RESOLVER_METRICS_PORT="${RESOLVER_METRICS_PORT:-9102}"
export INGEST_INTERNAL_PORT="${INGEST_INTERNAL_PORT:-9100}" EDGE_INTERNAL_PORT="${EDGE_INTERNAL_PORT:-9101}"

log "migrating $DATABASE_URL"
pnpm --silent cli migrate >/dev/null
log "provisioning the demo tenant"
mkdir -p .alarmcast/logs
pnpm --silent cli demo >.alarmcast/demo.json

pids=()
stop_all() {
  trap - INT TERM EXIT
  log "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

run() { # name entrypoint
  node --conditions=source --import tsx "$2" >".alarmcast/logs/$1.log" 2>&1 &
  pids+=($!)
}
run ws-edge services/ws-edge/src/main.ts
run recipient-resolver services/recipient-resolver/src/main.ts
run alarm-ingest services/alarm-ingest/src/main.ts

wait_http() { # url name
  for _ in $(seq 1 100); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { log "$2 exited; see .alarmcast/logs/"; tail -n 20 .alarmcast/logs/*.log; exit 1; }; done
    sleep 0.2
  done
  log "$2 did not become healthy; see .alarmcast/logs/"; exit 1
}
wait_http "http://127.0.0.1:$INGEST_PORT/healthz" alarm-ingest
wait_http "http://127.0.0.1:$EDGE_PORT/healthz" ws-edge
wait_http "http://127.0.0.1:$RESOLVER_METRICS_PORT/healthz" recipient-resolver

node - "$INGEST_PORT" "$EDGE_PORT" "$RESOLVER_METRICS_PORT" "$INGEST_INTERNAL_PORT" "$EDGE_INTERNAL_PORT" <<'JS'
const [ingest, edge, resolver, ingestInternal, edgeInternal] = process.argv.slice(2);
const demo = JSON.parse(require('fs').readFileSync('.alarmcast/demo.json', 'utf8'));
const token = Object.values(demo.collectorTokens).find((t) => t.tenantId !== null) ?? Object.values(demo.collectorTokens)[0];
const [deviceRef, device] = Object.entries(demo.devices).find(([, d]) => d.tenantId === token.tenantId) ?? Object.entries(demo.devices)[0];
console.log(`
alarmcast is running.
  alarm-ingest        http://127.0.0.1:${ingest}   (POST /v1/alarms, /healthz, /readyz); metrics http://127.0.0.1:${ingestInternal}/metrics
  console             http://127.0.0.1:${ingest}/console/   (sign in with a JWT below)
  ws-edge             ws://127.0.0.1:${edge}/app/alarmcast-key?protocol=7   (POST /broadcasting/auth, /apps/{id}/events); metrics http://127.0.0.1:${edgeInternal}/metrics
  recipient-resolver  http://127.0.0.1:${resolver}   (/healthz, /readyz, /metrics)
  logs                .alarmcast/logs/   demo ids and tokens: .alarmcast/demo.json

Demo users (bearer JWTs for /broadcasting/auth):`);
for (const [ref, u] of Object.entries(demo.users)) console.log(`  ${ref.padEnd(12)} id ${String(u.id).padEnd(5)} tenant ${String(u.tenantId).padEnd(5)} ${u.jwt}`);
console.log(`
Collector token (tenant ${token.tenantId}): ${token.token}

Raise an alarm on device ${deviceRef} (id ${device.id}):
  curl -sS -X POST http://127.0.0.1:${ingest}/v1/alarms \\
    -H 'Authorization: Bearer ${token.token}' -H 'Content-Type: application/json' \\
    -d '{"deviceId":${device.id},"alarmIdentifier":"wan-down","eventType":"Communications Alarm","probableCause":"Loss of signal","specificProblem":"WAN link down","perceivedSeverity":"Major"}'

Report an inform batch for ${deviceRef} (its live status on private-device.${device.id}; offline after 2 x 300 s + 30 s without one):
  curl -sS -X POST http://127.0.0.1:${ingest}/v1/devices/informs \\
    -H 'Authorization: Bearer ${token.token}' -H 'Content-Type: application/json' \\
    -d '{"informs":[{"deviceId":${device.id},"informedAt":"'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'","eventCodes":["1 BOOT","M Reboot"],"periodicInformInterval":300,"softwareVersion":"1.2.3","hardwareVersion":"HW-A","uptimeS":42,"parameters":{"Device.WiFi.Radio.1.Channel":"6"}}]}'

Press Ctrl-C to stop.`);
JS
wait -n "${pids[@]}" || true
log "a service exited; see .alarmcast/logs/"
